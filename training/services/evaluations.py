"""What a finished evaluation leaves in the database: a score per benchmark, and each sample
as a trajectory (source "evaluated") that the trajectory page shows step by step."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from django.db import transaction

from curation import engine
from curation.models import Problem, Trajectory
from curation.services.generation import trajectory_from_rollout

from ..models import EvaluationScore, TrainingRun

log = logging.getLogger(__name__)


def evaluation_import(run: TrainingRun) -> dict[str, float]:
    """Read ``results.json`` and ``trajectories.jsonl`` of an evaluation run into scores and
    trajectories. Idempotent: a second import replaces the scores and skips stored samples.
    Returns pass@1 per benchmark (fractions)."""
    root = Path(run.output_dir)
    results = json.loads((root / "results.json").read_text(encoding="utf-8"))
    benchmarks = results.get("benchmarks") or {}
    summary = {k: v for k, v in results.items() if k not in ("benchmarks", "settings")}
    with transaction.atomic():
        EvaluationScore.objects.filter(run=run).delete()
        EvaluationScore.objects.bulk_create(
            EvaluationScore(
                run=run, benchmark=name, problems=entry["n_problems"],
                samples=entry["n_samples"], pass_at_1=entry["pass_at_1"],
                code_calls_mean=entry.get("mean_code_calls"),
                response_tokens_mean=entry.get("mean_response_tokens"),
            )
            for name, entry in benchmarks.items()
        )  # fmt: skip
        run.results = summary
        run.save(update_fields=["results"])
        _trajectories_import(run, root / "trajectories.jsonl", results)
    return {name: entry["pass_at_1"] for name, entry in benchmarks.items()}


def _trajectories_import(run: TrainingRun, path: Path, results: dict) -> int:
    if not path.exists():
        return 0
    stored = set(Trajectory.objects.filter(job=run.job).values_list("job_index", flat=True))
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    ids = set()
    records = []
    for index, line in enumerate(lines):
        if index in stored or not line.strip():
            continue
        try:
            record = json.loads(line)
            ids.add(int(record["problem_id"]))
        except (ValueError, KeyError, TypeError):
            log.warning("run %s: sample line %s is unreadable, skipped", run.pk, index + 1)
            continue
        records.append((index, record))
    problems = Problem.objects.in_bulk(ids)
    for index, record in records:
        problem = problems.get(int(record["problem_id"]))
        if problem is None:
            continue
        try:
            rollout = engine.Rollout.from_dict(record)
        except (KeyError, TypeError, ValueError):
            log.warning("run %s: sample line %s is not a rollout, skipped", run.pk, index + 1)
            continue
        rows.append(
            trajectory_from_rollout(
                rollout, problem=problem, rule=results.get("rule"),
                tolerance=results.get("tolerance"), source=Trajectory.Source.EVALUATED,
                endpoint=run.model, job=run.job, job_index=index,
                config={"evaluation_run": run.pk, "sample": record.get("sample", 0)},
            )
        )  # fmt: skip
    Trajectory.objects.bulk_create(rows, batch_size=200)
    return len(rows)
