"""Queries and derived figures of the training pages: progress and ETA, the metric series,
and the evaluation table beside the paper's."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Prefetch

from curation.models import Job, Trajectory

from .models import EvaluationScore, RunMetric, TrainingRun
from .scripts.eval_scoring import (
    PAPER_MACRO,
    PAPER_PER_BENCHMARK_CAVEAT,
    PAPER_RESULTS,
    brier,
    paper_numbers,
    reliability,
)


def runs_recent(limit: int = 100):
    return TrainingRun.objects.select_related("job", "model", "dataset", "created_by")[:limit]


def embedded_trainable() -> dict | None:
    """The embedded model's trainable weights: ``{"folder", "made", "command"}`` (the command
    that makes them when they are not made yet), or None when no embedded model is set up."""
    from curation.engine.serving import local_model

    if local_model.selected_model_name() is None:
        return None
    try:
        gguf = local_model.model_path(local_model.get_model())
    except local_model.EnvError:
        return None
    folder = local_model.trainable_folder(gguf)
    return {
        "folder": folder,
        "made": local_model.trainable_made(folder),
        "command": f".venv/bin/python -m curation.engine.serving.trainable {gguf}",
    }


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def run_phase(run: TrainingRun, now: float | None = None) -> dict | None:
    """What the run's script says it is doing (its last ``phase`` event) and for how long:
    ``{"label": ..., "elapsed_s": ...}``, or None before the script said anything."""
    import time

    phase = run.phase or {}
    name = phase.get("phase")
    if not name:
        return None
    if name == "loading":
        label = "loading the model weights"
    elif name == "generating":
        k, problems = int(phase.get("k") or 1), int(phase.get("problems") or 0)
        label = (
            f"generating {_plural(k, 'sample')} of {_plural(problems, 'problem')}: "
            f"{run.step:,} of {int(phase.get('samples') or k * problems):,} samples done"
        )
    elif name == "scoring":
        label = f"scoring {_plural(int(phase.get('samples') or 0), 'sample')}"
    elif name == "training":
        label = f"training: step {run.step:,}" + (f" of {run.max_steps:,}" if run.max_steps else "")
    else:
        label = str(name)
    since = phase.get("time")
    now = time.time() if now is None else now
    elapsed = max(0.0, now - since) if isinstance(since, int | float) else None
    return {"name": name, "label": label, "elapsed_s": elapsed}


def run_eta_s(run: TrainingRun) -> float | None:
    """Seconds left at the recent pace (the last 20 steps of the current attempt: a resumed
    attempt's clock restarts, so the window stops where elapsed time goes backwards)."""
    if not run.max_steps or run.step >= run.max_steps or not run.job.is_active:
        return None
    rows = list(
        RunMetric.objects.filter(run=run, event=RunMetric.Event.STEP)
        .order_by("-step")
        .values_list("step", "elapsed_s")[:20]
    )
    window = rows[:1]
    for step, elapsed in rows[1:]:
        if elapsed >= window[-1][1]:
            break
        window.append((step, elapsed))
    if len(window) < 2:
        return None
    (last_step, last_s), (first_step, first_s) = window[0], window[-1]
    if last_step <= first_step or last_s <= first_s:
        return None
    return (last_s - first_s) / (last_step - first_step) * (run.max_steps - run.step)


# name, metric keys (one line each), title
CHARTS = (
    ("loss", ("loss",), "Training loss"),
    ("reward", ("reward", "reward_std"), "Reward (mean) and reward spread (std within groups)"),
    ("pass_at_1", ("pass_at_1",), "pass@1 so far (macro, fraction)"),
    ("completion_length", ("completion_length",), "Response length (tokens)"),
    ("code_calls", ("code_calls", "failed_code_calls"), "Code calls per response"),
    ("mean_token_accuracy", ("mean_token_accuracy",), "Token accuracy on trained tokens"),
    ("kl", ("kl",), "KL to the reference"),
    ("learning_rate", ("learning_rate",), "Learning rate"),
    ("grad_norm", ("grad_norm",), "Gradient norm"),
    ("iw_weight_max", ("iw_weight_max",), "iw-SFT: largest sequence weight"),
)


def metric_series(run: TrainingRun) -> dict[str, dict[str, list[tuple[float, float | None]]]]:
    """chart name -> {metric: [(step, value)]}, for the charts that have any value."""
    rows = RunMetric.objects.filter(run=run, event=RunMetric.Event.STEP).order_by("step")
    values = list(rows.values_list("step", "values"))
    out = {}
    for name, keys, _title in CHARTS:
        series = {k: [(s, v.get(k)) for s, v in values if k in v] for k in keys}
        series = {k: pts for k, pts in series.items() if any(y is not None for _, y in pts)}
        if series:
            out[name] = series
    return out


PAPER_JUDGED_AS = "STORM paper: |a−r|/|r| ≤ ε, ε not stated · pass@1"


@dataclass
class EvaluationRow:
    label: str
    cells: list[float | None]  # the figure in %, aligned with the table's benchmarks
    macro: float | None
    macro_over: int = 0
    run: TrainingRun | None = None
    k: int | None = None
    problems: int | None = None
    paper: bool = False
    links: list[str | None] = field(default_factory=list)
    scores: list[EvaluationScore | None] = field(default_factory=list)
    judged_as: str = ""
    rejudged: bool = False
    marked: bool = False  # shown although its rule or mode differs from the table's
    record: dict = field(default_factory=dict)
    # Per column: how many of the figure's problems the checkpoint was trained on (its
    # lineage's datasets and GRPO problems); a figure with overlap is flagged.
    overlaps: list[int] = field(default_factory=list)
    overlap: int = 0

    @property
    def flagged(self) -> list[tuple[float | None, str | None, EvaluationScore | None, int]]:
        """``items`` with the overlap of each column."""
        overlaps = self.overlaps or [0] * len(self.cells)
        return [(*item, n) for item, n in zip(self.items, overlaps, strict=True)]

    @property
    def items(self) -> list[tuple[float | None, str | None, EvaluationScore | None]]:
        """(figure %, the score's benchmark for the drill-down link, the score) per column."""
        links = self.links or [None] * len(self.cells)
        scores = self.scores or [None] * len(self.cells)
        return list(zip(self.cells, links, scores, strict=True))


@dataclass
class EvaluationTable:
    benchmarks: list[str]
    rows: list[EvaluationRow]
    judged_as: str  # the rule and mode of the table's columns
    choices: list[str]  # every rule and mode some evaluation was judged under
    hidden: dict[str, int]  # rows left out because their rule or mode differs: count per kind
    mixed: bool
    paper_caveat: str = PAPER_PER_BENCHMARK_CAVEAT  # shown with the paper's per-benchmark cells


def evaluation_table(*, judged_as: str | None = None, mix: bool = False) -> EvaluationTable:
    """Benchmarks (the paper's five, then any other evaluated), and rows: the paper's base and
    STORM, then every evaluation with scores, newest first, one row per rule it was judged
    under. A column never holds figures judged under different rules or modes: the rows under
    ``judged_as`` (default: the newest evaluation's own rule) are shown and the others counted
    as hidden, unless ``mix``, which shows them all and marks the ones that differ."""
    runs = list(
        TrainingRun.objects.filter(kind=TrainingRun.Kind.EVALUATE, scores__isnull=False)
        .exclude(job__status=Job.Status.FAILED)
        .select_related("model", "job")
        .prefetch_related(Prefetch("scores", EvaluationScore.objects.defer("answers")))
        .distinct()
        .order_by("-created_at")[:50]
    )
    others: list[str] = []
    for run in runs:
        for score in run.scores.all():
            if paper_numbers(score.benchmark) is None and score.benchmark not in others:
                others.append(score.benchmark)
    benchmarks = [*PAPER_RESULTS, *sorted(others)]
    rows = [
        EvaluationRow(
            label=label,
            paper=True,
            macro=PAPER_MACRO[key],
            macro_over=len(PAPER_RESULTS),
            cells=[PAPER_RESULTS[b][key] if b in PAPER_RESULTS else None for b in benchmarks],
            judged_as=PAPER_JUDGED_AS,
        )
        for key, label in (
            ("base", "Paper: Qwen3-4B-Thinking-2507"),
            ("storm", "Paper: STORM (CALM SFT + GRPO, 4B)"),
        )
    ]
    ours = [row for run in runs for row in _run_rows(run, benchmarks)]
    choices = list(dict.fromkeys(row.judged_as for row in ours))
    default = next(
        (row.judged_as for row in ours if not row.rejudged), choices[0] if choices else ""
    )
    wanted = judged_as if judged_as in choices else default
    hidden: dict[str, int] = {}
    for row in ours:
        if row.judged_as == wanted:
            rows.append(row)
        elif mix:
            row.marked = True
            rows.append(row)
        else:
            hidden[row.judged_as] = hidden.get(row.judged_as, 0) + 1
    return EvaluationTable(benchmarks, rows, wanted, choices, hidden, mix)


def _run_rows(run: TrainingRun, benchmarks: list[str]) -> list[EvaluationRow]:
    """One row per rule and mode the run's figures were computed under (its own first)."""
    groups: dict[str, list[EvaluationScore]] = {}
    for score in sorted(
        run.scores.all(), key=lambda s: (s.rejudged, s.created_at or run.created_at)
    ):
        groups.setdefault(score.judged_as, []).append(score)
    out = []
    overlap = (run.overlap or {}).get("by_benchmark") or {}
    for judged_as, scores in groups.items():
        by_column = {_column(score.benchmark, benchmarks): score for score in scores}
        cells = [100 * by_column[b].score if b in by_column else None for b in benchmarks]
        got = [c for c in cells if c is not None]
        out.append(
            EvaluationRow(
                label=run.model.name, run=run, cells=cells,
                macro=sum(got) / len(got) if got else None, macro_over=len(got),
                k=(run.results or {}).get("k"),
                problems=sum(s.problems for s in by_column.values()),
                links=[by_column[b].benchmark if b in by_column else None for b in benchmarks],
                scores=[by_column.get(b) for b in benchmarks],
                judged_as=judged_as, rejudged=scores[0].rejudged,
                record=(run.results or {}).get("record") or {},
                overlaps=[overlap.get(by_column[b].benchmark, 0) if b in by_column else 0
                          for b in benchmarks],
                overlap=(run.overlap or {}).get("overlap", 0),
            )
        )  # fmt: skip
    return out


def evaluation_export_rows(table: EvaluationTable) -> list[dict]:
    """The table as flat rows (one per figure) for the CSV export, each with its overlap with
    the checkpoint's training data and a flag when there is any."""
    rows = []
    for row in table.rows:
        for (cell, _, score, overlap), benchmark in zip(row.flagged, table.benchmarks, strict=True):
            if cell is None:
                continue
            rows.append({
                "model": row.label, "evaluation": row.run.pk if row.run else "",
                "judged_as": row.judged_as, "benchmark": benchmark, "figure_pct": round(cell, 2),
                "problems": score.problems if score else "",
                "trained_on_problems": overlap if row.run else "",
                "flag": f"checkpoint trained on {overlap} of these problems" if overlap else "",
            })  # fmt: skip
    return rows


def _column(benchmark: str, columns: list[str]) -> str:
    """The table column of a score: the paper's spelling when it is one of the paper's."""
    numbers = paper_numbers(benchmark)
    for name in PAPER_RESULTS:
        if numbers is not None and numbers is PAPER_RESULTS[name]:
            return name
    return benchmark


def evaluation_samples(run: TrainingRun, benchmark: str) -> list[dict]:
    """Per problem of ``benchmark`` in an evaluation run: the problem and its samples."""
    samples = (
        Trajectory.objects.filter(job=run.job, problem__benchmark__name=benchmark)
        .select_related("problem")
        .defer("prompt_tokens", "completion_tokens", "text")
        .order_by("problem_id", "job_index")
    )
    grouped: dict[int, dict] = {}
    for t in samples:
        entry = grouped.setdefault(t.problem_id, {"problem": t.problem, "samples": []})
        entry["samples"].append(t)
    # The reference each problem was judged against (its answer version then), from the
    # evaluation's stored answers: the problem's current answer may have been corrected since.
    own = run.scores.filter(benchmark=benchmark, rejudged=False).first()
    judged = {str(p.get("id")): p for p in (own.answers if own else [])}
    for entry in grouped.values():
        n = len(entry["samples"])
        entry["pass_at_1"] = sum(1 for t in entry["samples"] if t.is_correct) / n
        entry["judged"] = judged.get(str(entry["problem"].pk))
    return sorted(grouped.values(), key=lambda e: (e["pass_at_1"], e["problem"].pk))


def evaluation_calibration(limit: int = 20) -> list[dict]:
    """Calibration of the evaluations whose samples stated confidences (RLCR), newest first:
    per run its Brier score, how many confidences, and the reliability diagram's points, over
    all its benchmarks (from the answers its own scores stored)."""
    scores = (
        EvaluationScore.objects.filter(rejudged=False, confidences__gt=0)
        .select_related("run__model")
        .order_by("-run__created_at", "benchmark")
    )
    by_run: dict[int, dict] = {}
    for score in scores:
        entry = by_run.setdefault(score.run_id, {"run": score.run, "samples": []})
        entry["samples"] += [s for p in score.answers for s in p.get("samples") or []]
    out = []
    for entry in list(by_run.values())[:limit]:
        score, n = brier(entry["samples"])
        out.append({"run": entry["run"], "brier": score, "n": n,
                    "bins": reliability(entry["samples"])})  # fmt: skip
    return out
