"""Queries: what lists show and who may see what."""

from __future__ import annotations

from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db import connection
from django.db.models import Count, Q, QuerySet

from .models import Benchmark, Job, Problem


def benchmark_counts() -> QuerySet[Benchmark]:
    """Benchmarks with their number of problems (and how many have no optimal value)."""
    return Benchmark.objects.annotate(
        problem_count=Count("problems"),
        no_value_count=Count("problems", filter=~Q(problems__answer_status="value")),
    ).order_by("name")


def problem_search(
    *, text: str = "", benchmark: str = "", answer_status: str = ""
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


def jobs_visible_to(user) -> QuerySet[Job]:
    """Leads and admins see every job; reviewers see the shared generation work (hints,
    diagnoses, generations: the workbench is shared) and only their own imports."""
    from .roles import Role, has_role

    jobs = Job.objects.all()
    if has_role(user, Role.LEAD):
        return jobs
    training = (Job.Kind.SFT, Job.Kind.GRPO, Job.Kind.EVALUATE)
    return jobs.exclude(kind__in=training).filter(
        ~Q(kind=Job.Kind.IMPORT_PROBLEMS) | Q(created_by=user)
    )


def current_labels(trajectory) -> dict[int, list]:
    """step index -> the current label of each author on that step (latest row per author),
    leaving out authors whose latest act was to clear the label."""
    from .models import FlawLabel

    latest: dict[tuple[int, str, int | None], FlawLabel] = {}
    rows = FlawLabel.objects.filter(trajectory=trajectory).select_related(
        "flaw_type__category", "author_user", "author_endpoint"
    )
    for label in rows:  # ordered oldest first, so later rows win
        author = label.author_endpoint_id if label.source == "model" else label.author_user_id
        latest[(label.step_index, label.source, author)] = label
    by_step: dict[int, list] = {}
    for (step, _, _), label in sorted(latest.items(), key=lambda kv: kv[1].created_at):
        if label.flaw_type_id is not None:
            by_step.setdefault(step, []).append(label)
    return by_step


def label_history(trajectory, step_index: int):
    from .models import FlawLabel

    return (
        FlawLabel.objects.filter(trajectory=trajectory, step_index=step_index)
        .select_related("flaw_type", "author_user", "author_endpoint")
        .order_by("-created_at", "-pk")
    )


def trajectory_tree(problem) -> list[dict]:
    """All trajectories of a problem as a depth-first list of {trajectory, depth}."""
    from .models import Trajectory

    nodes = list(
        Trajectory.objects.filter(problem=problem)
        .defer("prompt_tokens", "completion_tokens", "text")
        .select_related("origin_hint")
        .order_by("created_at")
    )
    children: dict[int | None, list] = {}
    for node in nodes:
        children.setdefault(node.parent_id, []).append(node)
    ordered: list[dict] = []

    def walk(parent_id, depth):
        for node in children.get(parent_id, []):
            ordered.append({"trajectory": node, "depth": depth})
            walk(node.pk, depth + 1)

    walk(None, 0)
    return ordered


def review_queue(**filters):
    """The open review queue (see ``review_selectors``, where the review rule lives)."""
    from .review_selectors import review_queue as queue

    return queue(**filters)


def latest_decision(trajectory):
    return trajectory.decisions.select_related("author").first()


def golden_trajectories(*, benchmarks: list[str] | None = None):
    """Golden: the answer is correct, the Intervener's latest verdict is "flawless", and it
    passed the human gate (enough approvals, or a lead's; see ``review_selectors``)."""
    from django.db.models import OuterRef, Subquery

    from .models import Diagnosis, Trajectory
    from .review_selectors import golden_gate

    verdict = Diagnosis.objects.filter(trajectory=OuterRef("pk"), status="ok").order_by(
        "-created_at", "-pk"
    )
    golden = (
        golden_gate(
            Trajectory.objects.annotate(last_flawless=Subquery(verdict.values("flawless")[:1]))
        )
        .filter(is_correct=True, last_flawless=True)
        .select_related("problem__benchmark", "endpoint")
        .order_by("pk")
    )
    if benchmarks:
        golden = golden.filter(problem__benchmark__slug__in=benchmarks)
    return golden
