"""The problem list and detail pages, as full pages and as htmx fragments."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.models import AnswerStatus, Benchmark, Problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def bank():
    a = Benchmark.objects.create(name="Alpha")
    b = Benchmark.objects.create(name="Beta")
    rows = [
        (a, "a-1", "A factory makes chairs and tables.", 10.0, AnswerStatus.VALUE),
        (a, "a-2", "A farmer plants wheat and corn.", 20.0, AnswerStatus.VALUE),
        (b, "b-1", "A bakery bakes bread and cakes.", None, AnswerStatus.NO_BEST_SOLUTION),
    ]
    for bench, ext, question, answer, status in rows:
        Problem.objects.create(
            benchmark=bench,
            external_id=ext,
            question=question,
            answer=answer,
            answer_status=status,
            content_hash=ext,
        )
    return a, b


def test_it_lists_problems_with_counts_per_benchmark(client_for, reviewer, bank):
    response = client_for(reviewer).get(reverse("curation-problem-list"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html
    assert 'id="result-count">3<' in html
    assert "Alpha" in html and "Beta" in html


def test_it_searches_question_text(client_for, reviewer, bank):
    response = client_for(reviewer).get(reverse("curation-problem-list"), {"q": "chairs"})
    assert [p.external_id for p in response.context["page"]] == ["a-1"]


def test_it_filters_by_benchmark_and_answer_status(client_for, reviewer, bank):
    client = client_for(reviewer)
    by_bench = client.get(reverse("curation-problem-list"), {"benchmark": "alpha"})
    assert {p.external_id for p in by_bench.context["page"]} == {"a-1", "a-2"}
    no_value = client.get(reverse("curation-problem-list"), {"status": "no_best_solution"})
    assert [p.external_id for p in no_value.context["page"]] == ["b-1"]


def test_it_returns_only_the_results_fragment_to_htmx(client_for, reviewer, bank):
    response = client_for(reviewer).get(
        reverse("curation-problem-list"),
        {"q": "bakery"},
        headers={"HX-Request": "true", "HX-Target": "problem-results"},
    )
    html = response.content.decode()
    assert "<html" not in html
    assert html.strip().startswith('<div id="problem-results">')
    assert "b-1" in html and "a-1" not in html


def test_it_paginates(client_for, reviewer, bank):
    a, _ = bank
    for i in range(30):
        Problem.objects.create(
            benchmark=a, external_id=f"x-{i}", question="q", answer=1, content_hash=str(i)
        )
    response = client_for(reviewer).get(reverse("curation-problem-list"), {"page": 2})
    assert response.context["page"].number == 2
    assert len(response.context["page"]) == 33 - 25


def test_it_shows_a_problem_with_its_reference_answer(client_for, reviewer, bank):
    problem = Problem.objects.get(external_id="a-1")
    response = client_for(reviewer).get(reverse("curation-problem-detail", args=[problem.pk]))
    html = response.content.decode()
    assert "A factory makes chairs and tables." in html
    assert '<strong class="answer">10</strong>' in html


def test_it_escapes_problem_text(client_for, reviewer, bank):
    a, _ = bank
    evil = Problem.objects.create(
        benchmark=a,
        external_id="evil",
        question='<script>alert(1)</script><img src=x onerror="alert(2)">',
        answer=1,
        content_hash="e",
    )
    html = client_for(reviewer).get(reverse("curation-problem-detail", args=[evil.pk])).content
    assert b"<script>alert(1)" not in html
    assert b"<img src=x" not in html
    assert b"&lt;script&gt;" in html
