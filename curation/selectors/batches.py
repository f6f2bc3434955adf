"""What a CALM batch made: the ONE walk over its items and rounds (the review export, the
batch page's charts and re-judging all read it)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from ..models import BatchItem, BatchRound, Trajectory


def trajectories_made_by_batches(*, batch=None, problem=None) -> dict[int, dict]:
    """Trajectory id -> the config of the batch that made it: each item's root and the branch
    of every intervention round (an item's latest trajectory is one of those). Filter by one
    ``batch``, by one ``problem``, or neither (every batch)."""
    items, rounds = Q(), Q()
    if batch is not None:
        items &= Q(batch=batch)
        rounds &= Q(item__batch=batch)
    if problem is not None:
        items &= Q(problem=problem)
        rounds &= Q(item__problem=problem)
    made: dict[int, dict] = {}
    roots = BatchItem.objects.filter(items, root__isnull=False)
    for root_id, config in roots.values_list("root_id", "batch__config"):
        made[root_id] = config
    branches = BatchRound.objects.filter(rounds, after__isnull=False)
    for after_id, config in branches.values_list("after_id", "item__batch__config"):
        made[after_id] = config
    return made


def batch_trajectories(batch) -> QuerySet[Trajectory]:
    """Every trajectory a batch made (``trajectories_made_by_batches``)."""
    return Trajectory.objects.filter(pk__in=list(trajectories_made_by_batches(batch=batch)))
