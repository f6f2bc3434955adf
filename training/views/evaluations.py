"""Evaluation results beside the paper's table, the drill-down from a cell to samples, and
re-judging a finished evaluation under another answer rule."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from curation.engine.answer_rules import PRESETS, RULES
from curation.presentation import plots
from curation.roles import Role, role_required

from ..models import TrainingRun
from ..selectors import evaluation_calibration, evaluation_samples, evaluation_table
from ..services.evaluations import RejudgeError, evaluation_rejudge


@require_GET
@role_required(Role.LEAD)
def evaluation_compare(request: HttpRequest) -> HttpResponse:
    table = evaluation_table(judged_as=request.GET.get("rule"), mix=request.GET.get("mix") == "1")
    chart = plots.grouped_bar_chart(
        [*table.benchmarks, "macro"],
        {
            (f"{row.label} (eval #{row.run.pk}, {row.judged_as})" if row.run else row.label): [
                *row.cells,
                row.macro,
            ]
            for row in table.rows
        },
        title="Figures (%) per benchmark",
        unit="%",
    )
    presets = [(name, RULES[name]) for name in PRESETS]
    calibration = evaluation_calibration()
    context = {"table": table, "chart": chart, "presets": presets, "calibration": calibration,
               "reliability": _reliability_chart(calibration) if calibration else None}  # fmt: skip
    return render(request, "training/evaluation_compare.html", context)


@require_POST
@role_required(Role.LEAD)
def evaluation_rejudge_view(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(
        TrainingRun.objects.select_related("job"), pk=pk, kind=TrainingRun.Kind.EVALUATE
    )
    raw = (request.POST.get("tolerance") or "").strip()
    try:
        tolerance = float(raw) if raw else None
        scores = evaluation_rejudge(run=run, rule=request.POST.get("rule", ""), tolerance=tolerance)
    except (RejudgeError, ValueError) as exc:
        messages.error(request, f"Not re-judged: {exc}")
        return redirect("training-evaluations")
    label = scores[0].judged_as if scores else ""
    messages.success(request, f"Evaluation #{run.pk} re-judged: {label}.")
    return redirect(f"{reverse('training-evaluations')}?mix=1")


@require_GET
@role_required(Role.LEAD)
def evaluation_samples_page(request: HttpRequest, pk: int, benchmark: str) -> HttpResponse:
    run = get_object_or_404(
        TrainingRun.objects.select_related("model", "job"), pk=pk, kind=TrainingRun.Kind.EVALUATE
    )
    score = run.scores.filter(benchmark=benchmark, rejudged=False).first()
    if score is None:
        raise Http404("this run has no score on that benchmark")
    context = {"run": run, "score": score, "problems": evaluation_samples(run, benchmark)}
    return render(request, "training/evaluation_samples.html", context)


def _reliability_chart(calibration: list[dict]):
    series = {"perfect calibration": [(0.0, 0.0), (1.0, 1.0)]}
    for entry in calibration:
        name = f"{entry['run'].model.name} (eval #{entry['run'].pk})"
        series[name] = [(b["confidence"], b["accuracy"]) for b in entry["bins"]]
    return plots.line_chart(
        series, title="Reliability: accuracy per stated-confidence bin",
        x_label="stated confidence", y_label="share correct",
    )  # fmt: skip
