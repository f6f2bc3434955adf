"""Page context of a run: status, progress and ETA, charts, files (no queries in templates)."""

from __future__ import annotations

from curation.presentation import plots

from ..models import TrainingRun
from ..selectors import CHARTS, metric_series, run_eta_s, run_phase

_TITLES = {name: title for name, _keys, title in CHARTS}


def run_context(run: TrainingRun) -> dict:
    job = run.job
    stopping = job.status == job.Status.CANCELLED and run.exit_code is None and bool(run.command)
    charts = [
        plots.line_chart(series, title=_TITLES[name], x_label=_x_label(run), integer_x=True)
        for name, series in metric_series(run).items()
    ]
    return {
        "run": run,
        "job": job,
        "live": job.is_active or stopping,
        "stopping": stopping,
        "eta_s": run_eta_s(run),
        "phase": run_phase(run) if job.is_active else None,
        "charts": charts,
        "scores": list(run.scores.all()) if run.kind == TrainingRun.Kind.EVALUATE else [],
    }


def _x_label(run: TrainingRun) -> str:
    return "samples done" if run.kind == TrainingRun.Kind.EVALUATE else "optimizer step"
