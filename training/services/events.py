"""Reading a run's metrics file (written by ``training.scripts.runtime.MetricsWriter``) into the
database: step and eval rows, the run's progress, its checkpoints and how it ended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..models import RunMetric, TrainingRun

_META = {"event", "time", "elapsed_s", "step", "max_steps", "epoch"}


class MetricsTail:
    """Whole new lines of a growing JSONL file since the last read (a line still being
    written waits for its newline). A line that is not JSON is kept as an ``invalid`` event:
    recorded, never fatal."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offset = 0

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        events = []
        for line in chunk[: end + 1].decode("utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
            if not isinstance(event, dict) or "event" not in event:
                event = {"event": "invalid", "line": line[:500]}
            events.append(event)
        return events


def events_ingest(run: TrainingRun, events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Apply events to ``run`` (saved) and its metric rows; returns the ``done`` event if one
    came. Steps reported again by a resumed attempt replace the earlier report."""
    metrics: dict[tuple[str, int], RunMetric] = {}
    done = None
    changed: set[str] = set()
    for event in events:
        kind = event.get("event")
        # A start without a step budget (-1: epochs decide) leaves max_steps to the steps.
        if kind in ("start", "step", "eval") and _positive_int(event.get("max_steps")):
            run.max_steps = event["max_steps"]
            changed.add("max_steps")
        if kind == "start":
            run.resolved_config = event.get("config")
            changed.add("resolved_config")
        elif kind == "phase" and isinstance(event.get("phase"), str):
            run.phase = {k: v for k, v in event.items() if k != "event"}
            changed.add("phase")
        elif kind in ("step", "eval") and isinstance(event.get("step"), int):
            values = event.get("metrics") if kind == "eval" else event
            values = {k: v for k, v in (values or {}).items() if k not in _META}
            metrics[(kind, event["step"])] = RunMetric(
                run=run, event=kind, step=event["step"], epoch=_number(event.get("epoch")),
                elapsed_s=_number(event.get("elapsed_s")) or 0.0, values=values,
            )  # fmt: skip
            if kind == "step":
                run.step = event["step"]
                run.elapsed_s = _number(event.get("elapsed_s")) or run.elapsed_s
                changed.update({"step", "elapsed_s"})
        elif kind == "checkpoint" and event.get("path"):
            if event["path"] not in run.checkpoints:
                run.checkpoints = [*run.checkpoints, event["path"]]
            run.checkpoint = event["path"]
            changed.update({"checkpoints", "checkpoint"})
        elif kind == "done":
            done = event
            run.outcome = event.get("status") or TrainingRun.Outcome.FAILED
            if event.get("checkpoint"):
                run.checkpoint = event["checkpoint"]
            changed.update({"outcome", "checkpoint"})
        elif kind == "invalid":
            run.log_tail = (run.log_tail + f"\n[metrics file: not an event] {event['line']}")[
                -20_000:
            ]
            changed.add("log_tail")
    if metrics:
        RunMetric.objects.bulk_create(
            list(metrics.values()),
            update_conflicts=True,
            unique_fields=["run", "event", "step"],
            update_fields=["epoch", "elapsed_s", "values"],
        )
    if changed:
        run.save(update_fields=sorted(changed))
    return done


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def log_tail(path: str | Path, *, lines: int, max_bytes: int = 256_000) -> str:
    """The last ``lines`` lines of a log file (reads at most ``max_bytes`` from its end)."""
    path = Path(path)
    if not path.exists():
        return ""
    with path.open("rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        data = fh.read()
    text = data.decode("utf-8", errors="replace").replace("\r", "\n")
    return "\n".join(text.splitlines()[-lines:])
