"""Flaw labels: the current label of each author on each step, and a step's history."""

from __future__ import annotations

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
