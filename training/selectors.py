"""Queries and derived figures of the training pages: progress and ETA, the metric series,
and the evaluation table beside the paper's."""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.models import Job, Trajectory

from .evaluate import PAPER_MACRO, PAPER_RESULTS, paper_numbers
from .models import EvaluationScore, RunMetric, TrainingRun


def runs_recent(limit: int = 100):
    return TrainingRun.objects.select_related("job", "model", "dataset", "created_by")[:limit]


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


@dataclass
class EvaluationRow:
    label: str
    cells: list[float | None]  # pass@1 in %, aligned with the table's benchmarks
    macro: float | None
    macro_over: int = 0
    run: TrainingRun | None = None
    k: int | None = None
    problems: int | None = None
    paper: bool = False
    links: list[str | None] = field(default_factory=list)

    @property
    def items(self) -> list[tuple[float | None, str | None]]:
        """(pass@1 %, the score's benchmark name for the drill-down link) per column."""
        links = self.links or [None] * len(self.cells)
        return list(zip(self.cells, links, strict=True))


def evaluation_table() -> tuple[list[str], list[EvaluationRow]]:
    """Benchmarks (the paper's five, then any other evaluated), and rows: the paper's base and
    STORM, then every evaluation run with scores, newest first."""
    runs = list(
        TrainingRun.objects.filter(kind=TrainingRun.Kind.EVALUATE, scores__isnull=False)
        .exclude(job__status=Job.Status.FAILED)
        .select_related("model", "job")
        .prefetch_related("scores")
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
        )
        for key, label in (
            ("base", "Paper: Qwen3-4B-Thinking-2507"),
            ("storm", "Paper: STORM (CALM SFT + GRPO, 4B)"),
        )
    ]
    for run in runs:
        by_column: dict[str, EvaluationScore] = {}
        for score in run.scores.all():
            column = _column(score.benchmark, benchmarks)
            by_column[column] = score
        cells = [100 * by_column[b].pass_at_1 if b in by_column else None for b in benchmarks]
        got = [c for c in cells if c is not None]
        rows.append(
            EvaluationRow(
                label=run.model.name,
                run=run,
                cells=cells,
                macro=sum(got) / len(got) if got else None,
                macro_over=len(got),
                k=(run.results or {}).get("k"),
                problems=sum(s.problems for s in by_column.values()),
                links=[by_column[b].benchmark if b in by_column else None for b in benchmarks],
            )
        )
    return benchmarks, rows


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
    for entry in grouped.values():
        n = len(entry["samples"])
        entry["pass_at_1"] = sum(1 for t in entry["samples"] if t.is_correct) / n
    return sorted(grouped.values(), key=lambda e: (e["pass_at_1"], e["problem"].pk))
