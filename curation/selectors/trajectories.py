"""Trajectories: a problem's tree of branches, and the review filters."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet

from ..models import Diagnosis, FlawLabel, Hint, Trajectory


def trajectory_tree(problem) -> list[dict]:
    """All trajectories of a problem as a depth-first list of {trajectory, depth}."""
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


def trajectories_filtered(
    *,
    benchmark: str = "",
    correctness: str = "",
    flaws: str = "",
    source: str = "",
    candidates: str = "",
) -> QuerySet[Trajectory]:
    """Trajectories matching the review filters, whatever their review state.
    ``candidates="yes"``: only the golden candidates of CALM batches."""
    flawed = FlawLabel.objects.filter(trajectory=OuterRef("pk"), flaw_type__isnull=False)
    queue = (
        Trajectory.objects.defer("prompt_tokens", "completion_tokens", "text")
        .select_related("problem__benchmark", "endpoint", "review_lock__reviewer")
        .annotate(has_flaws=Exists(flawed))
    )
    if benchmark:
        queue = queue.filter(problem__benchmark__slug=benchmark)
    if correctness in ("correct", "incorrect"):
        queue = queue.filter(is_correct=correctness == "correct")
    elif correctness == "unknown":
        queue = queue.filter(is_correct__isnull=True)
    if flaws in ("yes", "no"):
        queue = queue.filter(has_flaws=flaws == "yes")
    if source:
        queue = queue.filter(source=source)
    else:
        queue = queue.exclude(source=Trajectory.Source.EVALUATED)
    if candidates == "yes":
        queue = queue.filter(
            pk__in=Trajectory.objects.filter(batch_items__outcome="candidate").values("pk")
        )
    return queue


def trajectory_verdicts(trajectory) -> list:
    """Every Intervener verdict on the trajectory, newest first, with what the page shows of
    each: the flaw type, the endpoint, and ``hinted`` (a hint was inserted from it)."""
    return list(
        Diagnosis.objects.filter(trajectory=trajectory)
        .select_related("flaw_type", "endpoint")
        .annotate(hinted=Exists(Hint.objects.filter(diagnosis=OuterRef("pk"))))
        .order_by("-created_at", "-pk")
    )
