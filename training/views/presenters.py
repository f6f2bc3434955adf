"""Page context of a run: status, progress and ETA, charts, files (no queries in templates)."""

from __future__ import annotations

from django.db.models import Q

from curation.presentation import plots

from ..models import TrainingRun
from ..selectors import CHARTS, metric_series, run_eta_s, run_phase

_TITLES = {name: title for name, _keys, title in CHARTS}


def _run_page(run: TrainingRun) -> dict:
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


def run_context(run: TrainingRun) -> dict:
    """The run page, with its checkpoint served by llama.cpp: the latest serve job (the page
    polls while it is active), the endpoint's liveness, and the lineage of the run's model."""
    from ..services.serving import QUANT, serve_job_latest, served_alive

    context = _run_page(run)
    serve_job = serve_job_latest(run) if run.is_training else None
    serving = serve_job is not None and serve_job.is_active
    return {
        **context,
        "live": context["live"] or serving,
        "serve_job": serve_job,
        "serve_quant": QUANT,
        "serving": serving,
        "served_alive": served_alive(run.served_endpoint) if run.served_endpoint_id else False,
        # Lineage: the run whose checkpoint this run's model is (registered or served).
        "model_from": TrainingRun.objects.filter(
            Q(endpoint=run.model_id) | Q(served_endpoint=run.model_id)
        ).first(),
    }


def _x_label(run: TrainingRun) -> str:
    return "samples done" if run.kind == TrainingRun.Kind.EVALUATE else "optimizer step"
