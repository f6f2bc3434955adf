"""What a finished evaluation leaves in the database: a score per benchmark with the rule,
mode and outcome counts it was computed under and the answers it judged, and each sample as a
trajectory (source "evaluated") that the trajectory page shows step by step. Re-judging a
finished evaluation under another rule reads those stored answers only."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from django.db import transaction

from curation import engine
from curation.engine.answer_rules import get_rule
from curation.models import Problem, Trajectory
from curation.services.trajectories import trajectory_from_rollout

from ..models import EvaluationScore, TrainingRun
from ..scripts.eval_scoring import rejudge
from .overlap import evaluation_overlap_record

log = logging.getLogger(__name__)


def evaluation_import(run: TrainingRun) -> dict[str, float]:
    """Read ``results.json`` and ``trajectories.jsonl`` of an evaluation run into scores and
    trajectories. Idempotent: a second import replaces the scores and skips stored samples.
    Returns pass@1 per benchmark (fractions)."""
    root = Path(run.output_dir)
    results = json.loads((root / "results.json").read_text(encoding="utf-8"))
    benchmarks = results.get("benchmarks") or {}
    summary = {k: v for k, v in results.items() if k not in ("benchmarks", "settings")}
    record = results.get("record") or {}
    with transaction.atomic():
        EvaluationScore.objects.filter(run=run).delete()
        EvaluationScore.objects.bulk_create(
            _score(run, name, entry, record=record, answers=_answers(entry))
            for name, entry in benchmarks.items()
            if entry["pass_at_1"] is not None  # every sample failed on infrastructure
        )
        run.results = summary
        run.save(update_fields=["results"])
        _trajectories_import(run, root / "trajectories.jsonl", results)
        # Checked again when the figures arrive: the lineage is what it is now.
        evaluation_overlap_record(run)
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
                tolerance=results.get("tolerance"), current_answer=False,
                source=Trajectory.Source.EVALUATED,
                endpoint=run.model, job=run.job, job_index=index,
                config={"evaluation_run": run.pk, "sample": record.get("sample", 0)},
            )
        )  # fmt: skip
    Trajectory.objects.bulk_create(rows, batch_size=200)
    return len(rows)


# The largest answer tolerance a re-judging may apply (as the batch and run forms allow).
MAX_TOLERANCE = 0.1
# What a stored sample keeps: enough to judge it again and to plot calibration.
_SAMPLE_KEYS = ("sample", "final_answer", "outcome", "confidence", "code_calls", "response_tokens")


def _answers(entry: dict) -> list[dict]:
    return [
        {
            "id": p.get("id"), "answer": p.get("answer"),
            "answer_status": p.get("answer_status", "value"),
            "answer_version": p.get("answer_version"),
            "samples": [{k: s.get(k) for k in _SAMPLE_KEYS} for s in p.get("samples") or []],
        }
        for p in entry.get("problems") or []
    ]  # fmt: skip


def _score(run: TrainingRun, name: str, entry: dict, *, record: dict, answers: list,
           rejudged: bool = False) -> EvaluationScore:  # fmt: skip
    counts = entry.get("counts") or {}
    rule = record.get("rule") or (run.results or {}).get("rule") or ""
    tolerance = record.get("tolerance")
    label = record.get("rule_label") or rule
    return EvaluationScore(
        run=run, benchmark=name, rule=rule, tolerance=tolerance, rule_label=label,
        mode=record.get("mode", "mean"), problems=entry["n_problems"],
        samples=entry["n_samples"], pass_at_1=entry["pass_at_1"],
        any_of_k=entry.get("any_of_k"), correct=counts.get("correct", 0),
        wrong=counts.get("wrong", 0), no_answer=counts.get("no_answer", 0),
        endpoint_errors=counts.get("endpoint_error", 0), brier=entry.get("brier"),
        confidences=entry.get("n_confidences") or 0,
        code_calls_mean=entry.get("mean_code_calls"),
        response_tokens_mean=entry.get("mean_response_tokens"),
        rejudged=rejudged, answers=answers,
    )  # fmt: skip


class RejudgeError(ValueError):
    pass


def evaluation_rejudge(*, run: TrainingRun, rule: str, tolerance: float | None = None):
    """Score a finished evaluation again under another answer rule, from the answers its own
    scores stored: no model, no sandbox, and no trajectory (row or file) is read or changed.
    Returns the new (or replaced) scores, one per benchmark."""
    if run.kind != TrainingRun.Kind.EVALUATE or run.job.is_active:
        raise RejudgeError("only a finished evaluation can be re-judged")
    # Bounded as the batch and run forms are: a tolerance of 1e308 judges every answer correct.
    if tolerance is not None and not 0 <= tolerance <= MAX_TOLERANCE:
        raise RejudgeError(f"the tolerance must be a number from 0 to {MAX_TOLERANCE}")
    try:
        preset = get_rule(rule)
        label = preset.label(tolerance)
        applied = preset.effective_tolerance(tolerance)
    except ValueError as exc:
        raise RejudgeError(str(exc)) from None
    own = list(run.scores.filter(rejudged=False))
    if not own or not any(score.answers for score in own):
        raise RejudgeError("this evaluation stored no answers to judge again")
    if own[0].rule_label == label:
        raise RejudgeError(f"this evaluation was judged under {label} already")
    mode = own[0].mode
    stored = {"record": {"mode": mode},
              "benchmarks": {s.benchmark: {"problems": s.answers} for s in own}}  # fmt: skip
    figures = rejudge(stored, rule=preset.name, tolerance=tolerance)
    record = {"rule": preset.name, "tolerance": applied, "rule_label": label, "mode": mode}
    with transaction.atomic():
        run.scores.filter(rejudged=True, rule_label=label).delete()
        return EvaluationScore.objects.bulk_create(
            _score(run, name, entry, record=record, answers=[], rejudged=True)
            for name, entry in figures.items()
            if entry["pass_at_1"] is not None  # every sample failed on infrastructure
        )
