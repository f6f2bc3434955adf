"""Flaw labels: set, change or remove; every change is a new row, never an overwrite."""

from __future__ import annotations

from django.db import transaction

from ..models import FlawLabel, FlawType, ModelEndpoint, Trajectory


class LabelError(ValueError):
    pass


def flaw_label_set(
    *,
    trajectory: Trajectory,
    step_index: int,
    flaw_type: FlawType | None,
    by_user=None,
    by_endpoint: ModelEndpoint | None = None,
    note: str = "",
    reason: str = "",
) -> FlawLabel:
    """Record a label (``flaw_type=None`` removes/clears) on one step, by a person or a model."""
    if (by_user is None) == (by_endpoint is None):
        raise LabelError("a label has exactly one author: a user or a model endpoint")
    if not 0 <= step_index < len(trajectory.steps):
        raise LabelError(f"step {step_index} does not exist (0..{len(trajectory.steps) - 1})")
    with transaction.atomic():
        return FlawLabel.objects.create(
            trajectory=trajectory,
            step_index=step_index,
            flaw_type=flaw_type,
            source=FlawLabel.Source.MODEL if by_endpoint else FlawLabel.Source.HUMAN,
            author_user=by_user,
            author_endpoint=by_endpoint,
            note=note,
            reason=reason,
        )
