"""Evaluation results beside the paper's table, and the drill-down from a cell to samples."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from curation import plots
from curation.roles import Role, role_required

from ..models import TrainingRun
from ..selectors import evaluation_samples, evaluation_table


@require_GET
@role_required(Role.LEAD)
def evaluation_compare(request: HttpRequest) -> HttpResponse:
    benchmarks, rows = evaluation_table()
    chart = plots.grouped_bar_chart(
        [*benchmarks, "macro"],
        {
            (f"{row.label} (eval #{row.run.pk})" if row.run else row.label): [*row.cells, row.macro]
            for row in rows
        },
        title="pass@1 (%) per benchmark",
        unit="%",
    )
    return render(
        request,
        "training/evaluation_compare.html",
        {"benchmarks": benchmarks, "rows": rows, "chart": chart},
    )


@require_GET
@role_required(Role.LEAD)
def evaluation_samples_page(request: HttpRequest, pk: int, benchmark: str) -> HttpResponse:
    run = get_object_or_404(
        TrainingRun.objects.select_related("model", "job"), pk=pk, kind=TrainingRun.Kind.EVALUATE
    )
    score = run.scores.filter(benchmark=benchmark).first()
    if score is None:
        raise Http404("this run has no score on that benchmark")
    context = {"run": run, "score": score, "problems": evaluation_samples(run, benchmark)}
    return render(request, "training/evaluation_samples.html", context)
