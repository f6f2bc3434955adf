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


def golden_standing(trajectory: Trajectory) -> dict:
    """Whether ``trajectory`` is in the golden set (``golden_trajectories``, the one definition
    the Datasets page counts and freezes) and, when it is not, what it lacks, for the badge a
    reviewer sees: ``{"golden": bool, "approved": bool, "missing": [reasons]}``.

    ``approved`` is the human gate alone; an approved trajectory outside the golden set is
    shown as "approved", never as "golden"."""
    golden = golden_trajectories().filter(pk=trajectory.pk).exists()
    approved = golden_gate(Trajectory.objects.filter(pk=trajectory.pk)).exists()
    missing = []
    if not golden:
        verdict = (
            Diagnosis.objects.filter(trajectory=trajectory, status="ok")
            .order_by("-created_at", "-pk")
            .values_list("flawless", flat=True)
            .first()
        )
        if trajectory.source == Trajectory.Source.EVALUATED:
            missing.append("an evaluation sample (test data) is never golden")
        if trajectory.is_correct is not True:
            missing.append(
                "the answer is incorrect"
                if trajectory.is_correct is False
                else "the answer is unjudged"
            )
        if verdict is None:
            missing.append("awaiting a flawless verdict from the Intervener (none yet)")
        elif not verdict:
            missing.append("the Intervener's latest verdict names a flaw")
        if not approved:
            missing.append("not yet approved by review")
    return {"golden": golden, "approved": approved, "missing": missing}
