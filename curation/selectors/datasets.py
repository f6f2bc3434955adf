"""The golden set: what a dataset version may freeze."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery

from ..models import Diagnosis, Trajectory
from .reviews import golden_gate


def golden_trajectories(*, benchmarks: list[str] | None = None):
    """Golden: the answer is correct, the Intervener's latest verdict is "flawless", and it
    passed the human gate (enough approvals, or a lead's; see ``selectors.reviews``). An
    evaluation's samples (source "evaluated") are never golden: they are test data."""
    verdict = Diagnosis.objects.filter(trajectory=OuterRef("pk"), status="ok").order_by(
        "-created_at", "-pk"
    )
    golden = (
        golden_gate(
            Trajectory.objects.annotate(last_flawless=Subquery(verdict.values("flawless")[:1]))
        )
        .filter(is_correct=True, last_flawless=True)
        .exclude(source=Trajectory.Source.EVALUATED)
        .select_related("problem__benchmark", "endpoint")
        .order_by("pk")
    )
    if benchmarks:
        golden = golden.filter(problem__benchmark__slug__in=benchmarks)
    return golden
