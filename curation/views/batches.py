"""CALM batches: create (leads), watch progress, pause / resume / cancel."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from ..forms import BatchForm
from ..models import Batch, BatchItem
from ..roles import Role, role_required
from ..services.batches import (
    BatchError,
    batch_cancel,
    batch_create,
    batch_pause,
    batch_problems,
    batch_progress,
    batch_resume,
)
from .batch_stats import batch_charts


@require_GET
@role_required(Role.REVIEWER)
def batch_list(request: HttpRequest) -> HttpResponse:
    batches = Batch.objects.select_related("reasoner", "intervener", "created_by")[:100]
    rows = [{"batch": b, "progress": batch_progress(b)} for b in batches]
    return render(request, "curation/batch_list.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@role_required(Role.LEAD)
def batch_new(request: HttpRequest) -> HttpResponse:
    form = BatchForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        selection = form.selection()
        problems = batch_problems(
            benchmarks=selection["benchmarks"], answer_status=selection["answer_status"],
            sample_size=selection["sample_size"], seed=selection["seed"],
            splits=selection["splits"],
        )  # fmt: skip
        try:
            batch = batch_create(
                name=form.cleaned_data["name"], problems=problems,
                reasoner=form.cleaned_data["reasoner"],
                intervener=form.cleaned_data["intervener"], config=form.config(),
                selection=selection, by=request.user,
            )  # fmt: skip
        except BatchError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect(batch)
    return render(request, "curation/batch_new.html", {"form": form})


ITEMS_SHOWN = 200


@require_GET
@vary_on_headers("HX-Request")
@role_required(Role.REVIEWER)
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    batch = get_object_or_404(Batch.objects.select_related("reasoner", "intervener"), pk=pk)
    batch_small = BatchItem.objects.filter(batch=batch).count() <= ITEMS_SHOWN
    context = {
        "batch": batch,
        "progress": batch_progress(batch),
        # Every item while it fits a page (in order, each row changing in place as the page
        # polls), else the most recently updated ones.
        "items": list(
            BatchItem.objects.filter(batch=batch)
            .select_related("problem", "trajectory")
            .order_by("pk" if batch_small else "-updated_at")[:ITEMS_SHOWN]
        ),
        "items_hidden": not batch_small,
    }
    if request.htmx:
        return render(request, "curation/batch_detail.html#batch-progress", context)
    context["charts"] = batch_charts(batch)
    return render(request, "curation/batch_detail.html", context)


@require_POST
@role_required(Role.LEAD)
def batch_control(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    batch = get_object_or_404(Batch, pk=pk)
    handlers = {"pause": batch_pause, "resume": batch_resume, "cancel": batch_cancel}
    if action not in handlers:
        return HttpResponse(status=404)
    if not handlers[action](batch=batch):
        messages.error(
            request, f"The batch is {batch.get_status_display().lower()}: cannot {action}."
        )
    return redirect(batch)
