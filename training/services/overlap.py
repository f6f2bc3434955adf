"""Train and test never meet unseen: an evaluation records which of its problems the evaluated
checkpoint was trained on, through its whole lineage (the SFT run's dataset, the runs that made
its starting weights and their datasets, GRPO problem sets). A problem counts when it is the
same problem or has the same question (normalised), in whatever benchmark it was imported."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from curation.models import DatasetEntry, ModelEndpoint, Problem

from ..models import TrainingRun


def question_key(question: str) -> str:
    """The question without case and spacing differences: a duplicate across benchmarks."""
    return hashlib.sha256(" ".join(question.lower().split()).encode()).hexdigest()


def checkpoint_lineage(endpoint: ModelEndpoint) -> list[TrainingRun]:
    """The training runs behind an endpoint's weights, newest first: the run that registered
    it, the run that registered that run's starting weights, and so on (empty for weights
    trained outside the app)."""
    runs: list[TrainingRun] = []
    current: ModelEndpoint | None = endpoint
    while current is not None:
        run = (
            TrainingRun.objects.filter(endpoint=current).select_related("dataset", "model").first()
        )
        if run is None or any(r.pk == run.pk for r in runs):
            break
        runs.append(run)
        current = run.model
    return runs


def _trained_problem_ids(run: TrainingRun) -> tuple[str, list[int]]:
    if run.dataset_id:
        ids = DatasetEntry.objects.filter(version=run.dataset_id).values_list(
            "trajectory__problem_id", flat=True
        )
        return "dataset", sorted(set(ids))
    return "problems", sorted(set((run.problem_selection or {}).get("problem_ids") or []))


def evaluation_overlap(run: TrainingRun) -> dict:
    """The overlap of an evaluation's problems with its checkpoint's training data: per
    lineage source (dataset or GRPO problem set) the evaluated problems it holds, the total,
    per benchmark, and the evaluated problems per split."""
    evaluated = list(
        Problem.objects.filter(pk__in=(run.problem_selection or {}).get("problem_ids") or [])
        .select_related("benchmark")
        .only("pk", "question", "split", "benchmark__name")
    )
    keys = {p.pk: question_key(p.question) for p in evaluated}
    sources = []
    hit: set[int] = set()
    for trained_run in checkpoint_lineage(run.model):
        kind, ids = _trained_problem_ids(trained_run)
        trained_keys = {
            question_key(q)
            for q in Problem.objects.filter(pk__in=ids).values_list("question", flat=True)
        }
        same = sorted(p.pk for p in evaluated if p.pk in set(ids) or keys[p.pk] in trained_keys)
        hit.update(same)
        sources.append({
            "kind": kind, "run": trained_run.pk, "run_kind": trained_run.kind,
            "run_name": trained_run.name,
            "dataset": trained_run.dataset_id,
            "dataset_name": trained_run.dataset.name if trained_run.dataset_id else None,
            "problems": len(ids), "overlap": len(same), "problem_ids": same,
        })  # fmt: skip
    by_benchmark = Counter(p.benchmark.name for p in evaluated if p.pk in hit)
    return {
        "checkpoint": run.model.name,
        "trained_here": bool(sources),
        "sources": sources,
        "problems": len(evaluated),
        "overlap": len(hit),
        "problem_ids": sorted(hit),
        "by_benchmark": dict(by_benchmark),
        "splits": dict(Counter(p.split or "unset" for p in evaluated)),
    }


def evaluation_overlap_record(run: TrainingRun) -> dict:
    """Compute and store the overlap on the run, and beside its files (``overlap.json``)."""
    overlap = evaluation_overlap(run)
    TrainingRun.objects.filter(pk=run.pk).update(overlap=overlap)
    run.overlap = overlap
    if run.output_dir and Path(run.output_dir).is_dir():
        (Path(run.output_dir) / "overlap.json").write_text(json.dumps(overlap, indent=2))
    return overlap
