"""The trajectory page, its fragments and its actions, for each persona."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.models import FlawLabel, ReviewDecision, ReviewLock

pytestmark = pytest.mark.django_db


def parse_elements(html: str) -> list[tuple[str, dict]]:
    """Every element the browser would build from this HTML: (tag, attributes)."""
    from html.parser import HTMLParser

    found: list[tuple[str, dict]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, {k: v or "" for k, v in attrs}))

    Collector().feed(html)
    return found


def test_it_shows_the_problem_steps_and_sandbox_results(client_for, reviewer, make_trajectory):
    t = make_trajectory()
    html = client_for(reviewer).get(t.get_absolute_url()).content.decode()
    assert "Tables and chairs; maximize profit." in html
    assert '<strong class="answer">4,100</strong>' in html
    assert html.count('<article class="step card') == 4
    assert "objective: 4,100" in html
    assert 'id="tmr">0.00%<' in html


def test_it_renders_hostile_model_output_inert(client_for, reviewer, make_trajectory):
    from .conftest import step

    hostile = [
        step(0, "<script>alert(1)</script> [x](javascript:alert(2)) <b onclick=alert(3)>b</b>",
             "print('<img src=x onerror=alert(4)>')", "<script>alert(5)</script>"),
        step(1, "\\boxed{<svg onload=alert(6)>}"),
    ]  # fmt: skip
    t = make_trajectory(steps=hostile, final_answer="<svg onload=alert(6)>")
    html = client_for(reviewer).get(t.get_absolute_url()).content.decode()
    elements = parse_elements(html)
    scripts = [attrs for tag, attrs in elements if tag == "script"]
    assert all(attrs.get("src", "").startswith("/static/") for attrs in scripts)  # ours only
    assert not [tag for tag, attrs in elements if tag == "svg"]
    handlers = [(tag, a) for tag, attrs in elements for a in attrs if a.startswith("on")]
    assert handlers == []
    links = [attrs.get("href", "") for tag, attrs in elements if tag == "a"]
    assert not [href for href in links if href.lower().startswith("javascript:")]
    assert "alert(5)" in html  # the text is still shown, escaped


def test_malformed_steps_from_a_model_do_not_crash_the_page(client_for, reviewer, make_trajectory):
    t = make_trajectory(steps=[{"reasoning": 42}, "garbage", {"code": ["x"], "result": "nope"}])
    response = client_for(reviewer).get(t.get_absolute_url())
    assert response.status_code == 200
    assert "malformed step" in response.content.decode()


def test_a_reviewer_labels_a_step_and_the_history_keeps_every_change(
    client_for, reviewer, make_trajectory, taxonomy
):
    t = make_trajectory()
    client = client_for(reviewer)
    manual = next(ft for ft in taxonomy if ft.code == "manual_computation")
    url = reverse("curation-step-label", args=[t.pk, 0])
    fragment = client.post(
        url, {"flaw_type": manual.pk, "note": "hand arithmetic"}, headers={"HX-Request": "true"}
    )
    html = fragment.content.decode()
    assert "<html" not in html and html.strip().startswith('<article class="step card')
    assert "Manual computation · human: rita-reviewer" in html
    client.post(url, {"flaw_type": "", "reason": "it was fine"})  # clear, without htmx
    assert FlawLabel.objects.filter(trajectory=t, step_index=0).count() == 2
    history = client.get(reverse("curation-step-history", args=[t.pk, 0])).content.decode()
    assert "<html" in history  # a page of its own without htmx
    assert "hand arithmetic" in history and "it was fine" in history
    assert "no flaw (cleared)" in history
    fragment = client.get(
        reverse("curation-step-history", args=[t.pk, 0]), headers={"HX-Request": "true"}
    ).content.decode()
    assert "<html" not in fragment and fragment.strip().startswith('<table class="history-table"')


def test_a_label_on_a_step_that_does_not_exist_is_refused(client_for, reviewer, make_trajectory):
    t = make_trajectory()
    response = client_for(reviewer).post(
        reverse("curation-step-label", args=[t.pk, 9]), {"flaw_type": ""},
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert response.status_code == 400
    assert not FlawLabel.objects.exists()


def test_a_decision_is_kept_with_its_author_and_releases_the_lock(
    client_for, reviewer, make_trajectory
):
    t = make_trajectory()
    ReviewLock.objects.create(trajectory=t, reviewer=reviewer, locked_until="2999-01-01T00:00Z")
    client_for(reviewer).post(
        reverse("curation-trajectory-decide", args=[t.pk]),
        {"decision": "approved", "reason": "clean"},
    )
    decision = ReviewDecision.objects.get()
    assert (decision.decision, decision.reason, decision.author) == ("approved", "clean", reviewer)
    assert not ReviewLock.objects.exists()


def test_the_queue_hands_out_locked_trajectories_one_reviewer_at_a_time(
    client_for, reviewer, lead, make_trajectory
):
    first, second = make_trajectory(), make_trajectory()
    client = client_for(reviewer)
    response = client.post(reverse("curation-review-next"))
    assert response["Location"] == f"{first.get_absolute_url()}?from=queue"
    client.force_login(lead)
    response = client.post(reverse("curation-review-next"))
    assert response["Location"] == f"{second.get_absolute_url()}?from=queue"


def test_the_queue_filters_and_returns_a_fragment_to_htmx(client_for, reviewer, make_trajectory):
    make_trajectory(is_correct=True)
    make_trajectory(is_correct=False)
    response = client_for(reviewer).get(
        reverse("curation-review-queue"), {"correctness": "incorrect"},
        headers={"HX-Request": "true"},
    )  # fmt: skip
    html = response.content.decode()
    assert "<html" not in html and 'id="queue-count">1<' in html


def test_the_comparison_aligns_branches_at_the_branch_point(client_for, reviewer, make_trajectory):
    from curation.models import Hint

    from .conftest import STEPS, step

    parent = make_trajectory()
    child_steps = [*STEPS[:1], step(1, "Hint: use code.", "print(1)", "1\n", has_hint=True)]
    child = make_trajectory(steps=child_steps, parent=parent, branch_step=1, branch_token=10)
    Hint.objects.create(trajectory=parent, step_index=1, text="Use code.", branch=child)
    html = (
        client_for(reviewer)
        .get(reverse("curation-trajectory-compare", args=[parent.pk, child.pk]))
        .content.decode()
    )
    assert "Branch point (step 2)" in html and "Use code." in html
    assert 'class="same" id="row-0"' in html and 'class="differs" id="row-1"' in html


PAGES = [
    ("get", "curation-trajectory-detail", lambda t: [t.pk]),
    ("get", "curation-step-history", lambda t: [t.pk, 0]),
    ("get", "curation-review-queue", lambda t: []),
    ("post", "curation-review-next", lambda t: []),
    ("post", "curation-step-label", lambda t: [t.pk, 0]),
    ("post", "curation-hint-create", lambda t: [t.pk]),
    ("post", "curation-trajectory-diagnose", lambda t: [t.pk]),
    ("post", "curation-trajectory-decide", lambda t: [t.pk]),
    ("get", "curation-trajectory-compare", lambda t: [t.pk, t.pk]),
]


@pytest.mark.parametrize(("method", "name", "args"), PAGES, ids=[p[1] for p in PAGES])
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
def test_outsiders_and_anonymous_users_are_refused_everywhere(
    client_for, outsider, make_trajectory, method, name, args, htmx
):
    t = make_trajectory()
    url = reverse(name, args=args(t))
    headers = {"HX-Request": "true"} if htmx else {}
    anonymous = getattr(client_for(None), method)(url, headers=headers)
    if htmx:  # a full-page login for htmx (HX-Redirect), not a login form in a fragment
        assert anonymous.status_code == 200 and anonymous["HX-Redirect"].startswith("/login/")
    else:
        assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    refused = getattr(client_for(outsider), method)(url, headers=headers)
    assert refused.status_code == 403
    assert not FlawLabel.objects.exists() and not ReviewDecision.objects.exists()


def test_the_agreement_page_computes_kappa_between_humans_and_the_intervener(
    client_for, reviewer, lead, make_trajectory, taxonomy
):
    from curation.models import Diagnosis, ModelEndpoint
    from curation.services.labels import flaw_label_set
    from curation.services.reviews import review_decide

    manual, delayed = taxonomy[0], taxonomy[1]
    model = ModelEndpoint.objects.create(name="judge", backend="openai", model="m")
    a, b = make_trajectory(), make_trajectory()
    for t in (a, b):
        Diagnosis.objects.create(trajectory=t, endpoint=model, status="ok", flawless=False)
        review_decide(trajectory=t, decision="needs_work", by=reviewer)
    # Step 0 of a: both say manual computation; step 1 of b: the model says delayed code use,
    # the human says manual computation; step 2 of b: only the human flags it.
    flaw_label_set(trajectory=a, step_index=0, flaw_type=manual, by_endpoint=model)
    flaw_label_set(trajectory=a, step_index=0, flaw_type=manual, by_user=reviewer)
    flaw_label_set(trajectory=b, step_index=1, flaw_type=delayed, by_endpoint=model)
    flaw_label_set(trajectory=b, step_index=1, flaw_type=manual, by_user=reviewer)
    flaw_label_set(trajectory=b, step_index=2, flaw_type=manual, by_user=reviewer)
    html = client_for(lead).get(reverse("curation-agreement")).content.decode()
    # 3 pairs: (M, M), (M, D), (M, none); observed 1/3; the human always says M, so the
    # chance agreement is p_M(model) = 1/3 and κ = (1/3 - 1/3) / (1 - 1/3) = 0.
    assert 'id="kappa">κ = 0.000<' in html and "over 3 step pairs" in html
    assert "<svg" in html
