"""The problem bank: benchmarks with their counts, and problem search."""

from __future__ import annotations

from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db import connection
from django.db.models import Count, Q, QuerySet

from ..models import Benchmark, Problem


def benchmark_counts() -> QuerySet[Benchmark]:
    """Benchmarks with their number of problems (and how many have no optimal value)."""
    return Benchmark.objects.annotate(
        problem_count=Count("problems"),
        no_value_count=Count("problems", filter=~Q(problems__answer_status="value")),
    ).order_by("name")


def problem_search(
    *, text: str = "", benchmark: str = "", answer_status: str = "", split: str = ""
) -> QuerySet[Problem]:
    """Problems matching a free-text query and filters, best matches first when searching.

    PostgreSQL uses real full-text search (stemming, ``websearch`` syntax: quotes, OR, -term);
    SQLite, the embedded default, matches every word as a case-insensitive substring.
    """
    problems = Problem.objects.select_related("benchmark")
    if benchmark:
        problems = problems.filter(benchmark__slug=benchmark)
    if answer_status:
        problems = problems.filter(answer_status=answer_status)
    if split:
        problems = problems.filter(split=split)
    text = text.strip()
    if not text:
        return problems
    by_id = Q(external_id__iexact=text)
    if connection.vendor == "postgresql":
        query = SearchQuery(text, search_type="websearch", config="english")
        vector = SearchVector("question", config="english")
        return (
            problems.annotate(rank=SearchRank(vector, query))
            .filter(Q(rank__gt=0) | by_id)
            .order_by("-rank", "benchmark__name", "source_index")
        )
    words = Q()
    for word in text.split():
        words &= Q(question__icontains=word)
    return problems.filter(words | by_id)
