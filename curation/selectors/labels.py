"""Flaw labels: the current label of each author on each step, and a step's history."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet

from ..models import FlawLabel


def current_labels(trajectory) -> dict[int, list]:
    """step index -> the current label of each author on that step (latest row per author),
    leaving out authors whose latest act was to clear the label."""
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
    return (
        FlawLabel.objects.filter(trajectory=trajectory, step_index=step_index)
        .select_related("flaw_type", "author_user", "author_endpoint")
        .order_by("-created_at", "-pk")
    )


def current_flaw_labels(trajectories) -> QuerySet[FlawLabel]:
    """The flaw labels that stand on ``trajectories`` (a queryset or ids): each author's latest
    label on each step (rows are ordered by ``created_at``, then pk, as in ``current_labels``),
    leaving out labels later replaced or cleared, and the clearing rows themselves. What the
    charts count: a relabelled step counts once, with its new label."""
    later = FlawLabel.objects.filter(
        trajectory=OuterRef("trajectory"), step_index=OuterRef("step_index"),
        source=OuterRef("source"),
    ).filter(
        Q(created_at__gt=OuterRef("created_at"))
        | Q(created_at=OuterRef("created_at"), pk__gt=OuterRef("pk"))
    )  # fmt: skip
    by_person = later.filter(author_user=OuterRef("author_user"))
    by_model = later.filter(author_endpoint=OuterRef("author_endpoint"))
    return (
        FlawLabel.objects.filter(trajectory__in=trajectories)
        .exclude(Q(source=FlawLabel.Source.HUMAN) & Exists(by_person))
        .exclude(Q(source=FlawLabel.Source.MODEL) & Exists(by_model))
        .exclude(flaw_type=None)
    )
