"""Compare any two trajectories of a problem: aligned at their common prefix (siblings too),
a word-level diff inside a step, full outputs, and each side's hint where it sits."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from curation.models import Hint
from curation.views.compare import word_diff

from .conftest import STEPS, step

pytestmark = pytest.mark.django_db


def test_the_word_diff_marks_only_the_changed_words_and_escapes():
    left, right = word_diff("x + y <= 10 so x = 4", "x + y <= 12 so x = 4 <b>")
    assert str(left) == "x + y &lt;= <del>10</del> so x = 4"
    assert str(right) == "x + y &lt;= <ins>12</ins> so x = 4<ins> &lt;b&gt;</ins>"


def test_the_word_diff_of_thousands_of_repetitive_words_answers_within_a_second():
    # 2,000 repetitive words took minutes in difflib; the changed middle is now marked whole.
    left, right = " ".join(["a"] * 2000), " ".join(["a b"] * 1000)
    started = time.monotonic()
    old, new = word_diff("same start " + left + " same end", "same start " + right + " same end")
    assert time.monotonic() - started < 1
    assert str(old).startswith("same start a <del>a a") and str(old).endswith("</del> same end")
    assert str(new).startswith("same start a <ins>b a") and str(new).endswith("</ins> same end")


def test_siblings_are_aligned_at_their_common_prefix_with_both_hints(
    client_for, reviewer, make_trajectory
):
    parent = make_trajectory()
    shared = STEPS[:2]
    first = make_trajectory(
        steps=[*shared, step(2, "Integers: x = 4 and y = 3.", None)], parent=parent, branch_step=2
    )
    second = make_trajectory(
        steps=[*shared, step(2, "Integers: x = 5 and y = 3.", None)], parent=parent, branch_step=2
    )
    Hint.objects.create(trajectory=parent, step_index=2, text="Use integers.", branch=first)
    Hint.objects.create(trajectory=parent, step_index=2, text="Check the bound.", branch=second)
    html = (
        client_for(reviewer)
        .get(reverse("curation-trajectory-compare", args=[first.pk, second.pk]))
        .content.decode()
    )
    assert 'id="shared">2 shared steps<' in html and "Branch point (step 3)" in html
    assert 'class="same" id="row-1"' in html and 'class="differs" id="row-2"' in html
    assert "x = <del>4</del> and" in html and "x = <ins>5</ins> and" in html
    assert "Use integers." in html and "Check the bound." in html


def test_a_truncated_output_can_be_expanded_in_full(client_for, reviewer, make_trajectory):
    long = "\n".join(f"line {i}" for i in range(300))
    shown = long[:400] + "\n...\n" + long[-400:]
    s = step(0, "Run it.", "print('lines')", shown)
    s["result"]["stdout"] = long
    t = make_trajectory(steps=[s, step(1, "Done.")])
    client = client_for(reviewer)
    html = client.get(t.get_absolute_url()).content.decode()
    assert "Full output as run" in html and "line 150" in html
    other = make_trajectory(steps=[s, step(1, "Finished.")])
    html = client.get(reverse("curation-trajectory-compare", args=[t.pk, other.pk])).content
    assert b"line 150" in html


def test_trajectories_of_different_problems_are_not_compared(client_for, reviewer, make_trajectory):
    from curation.models import Benchmark, Problem

    a = make_trajectory()
    elsewhere = Problem.objects.create(
        benchmark=Benchmark.objects.get(), external_id="other", question="q", answer=1,
        content_hash="y",
    )  # fmt: skip
    b = make_trajectory(problem=elsewhere)
    response = client_for(reviewer).get(
        reverse("curation-trajectory-compare", args=[a.pk, b.pk]), follow=True
    )
    assert "Only trajectories of the same problem can be compared." in response.content.decode()
