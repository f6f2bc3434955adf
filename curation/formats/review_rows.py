"""Review work as data: every label, comment and decision on a set of trajectories, one row
each, with provenance (who, when, human or model), as CSV or JSON Lines."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet

from ..models import Comment, FlawLabel, ReviewDecision, Trajectory

COLUMNS = [
    "kind", "trajectory_id", "benchmark", "problem", "step_index", "value", "note", "reason",
    "author", "author_kind", "by_lead", "created_at", "current", "resolved_by", "resolved_at",
]  # fmt: skip


def review_rows(trajectories: QuerySet[Trajectory]) -> Iterator[dict]:
    """Labels (human and model), comments and decisions of ``trajectories``, oldest first per
    kind. ``current``: the row is the author's latest label or decision (labels and decisions
    are never overwritten, so earlier rows are history)."""
    ids = trajectories.values("pk")
    problems = {
        t["pk"]: (t["problem__benchmark__name"], t["problem__external_id"])
        for t in Trajectory.objects.filter(pk__in=ids).values(
            "pk", "problem__benchmark__name", "problem__external_id"
        )
    }

    def base(kind: str, trajectory_id: int, **fields) -> dict:
        bench, problem = problems.get(trajectory_id, ("", ""))
        row = dict.fromkeys(COLUMNS, "")
        row.update(kind=kind, trajectory_id=trajectory_id, benchmark=bench, problem=problem)
        row.update(fields)
        return row

    labels = (
        FlawLabel.objects.filter(trajectory__in=ids)
        .select_related("flaw_type", "author_user", "author_endpoint")
        .order_by("created_at", "pk")
    )
    latest: dict[tuple, int] = {}
    for label in labels:  # oldest first: the last row per (step, author) is current
        author = label.author_endpoint_id if label.source == "model" else label.author_user_id
        latest[(label.trajectory_id, label.step_index, label.source, author)] = label.pk
    current_labels = set(latest.values())
    for label in labels:
        model = label.source == FlawLabel.Source.MODEL
        yield base(
            "label", label.trajectory_id, step_index=label.step_index,
            value=label.flaw_type.code if label.flaw_type else "",
            note=label.note, reason=label.reason,
            author=str(label.author_endpoint if model else label.author_user or ""),
            author_kind="model" if model else "human",
            created_at=label.created_at.isoformat(), current=label.pk in current_labels,
        )  # fmt: skip
    for comment in (
        Comment.objects.filter(trajectory__in=ids)
        .select_related("author", "resolved_by")
        .order_by("created_at", "pk")
    ):
        yield base(
            "comment", comment.trajectory_id,
            step_index="" if comment.step_index is None else comment.step_index,
            value=comment.text, author=str(comment.author), author_kind="human",
            created_at=comment.created_at.isoformat(), current=comment.is_open,
            resolved_by=str(comment.resolved_by or ""),
            resolved_at=comment.resolved_at.isoformat() if comment.resolved_at else "",
        )  # fmt: skip
    for decision in (
        ReviewDecision.objects.filter(trajectory__in=ids)
        .select_related("author")
        .order_by("created_at", "pk")
    ):
        yield base(
            "decision", decision.trajectory_id, value=decision.decision, reason=decision.reason,
            author=str(decision.author), author_kind="human", by_lead=decision.by_lead,
            created_at=decision.created_at.isoformat(), current=not decision.superseded,
        )  # fmt: skip


class _Echo:
    def write(self, value: str) -> str:
        return value


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...), +cmd|…).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """Text a spreadsheet would read as a formula, prefixed with ``'`` so it shows as text;
    numbers and other values unchanged (model output and comments are untrusted)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def as_csv(rows: Iterable[dict]) -> Iterator[str]:
    """The rows as CSV, every text cell safe to open in a spreadsheet (``spreadsheet_safe``)."""
    writer = csv.DictWriter(_Echo(), fieldnames=COLUMNS)
    yield writer.writeheader()
    for row in rows:
        yield writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})


def as_jsonl(rows: Iterable[dict]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False) + "\n"
