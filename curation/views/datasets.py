"""Golden datasets: freeze (leads), browse and download exports (reviewers)."""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from ..models import Benchmark, DatasetVersion, Trajectory
from ..roles import Role, role_required
from ..selectors.datasets import golden_trajectories
from ..services.datasets import DatasetError, dataset_file, dataset_freeze
from .batch_stats import trajectory_charts


@require_GET
@role_required(Role.REVIEWER)
def dataset_list(request: HttpRequest) -> HttpResponse:
    context = {
        "versions": DatasetVersion.objects.select_related("created_by")[:100],
        "golden_count": golden_trajectories().count(),
        "benchmarks": Benchmark.objects.all(),
    }
    return render(request, "curation/dataset_list.html", context)


@require_POST
@role_required(Role.LEAD)
def dataset_freeze_view(request: HttpRequest) -> HttpResponse:
    benchmarks = [b for b in request.POST.getlist("benchmarks") if b]
    name = request.POST.get("name", "").strip()[:200] or "golden set"
    try:
        version = dataset_freeze(
            name=name,
            note=request.POST.get("note", "")[:5000],
            trajectories=golden_trajectories(benchmarks=benchmarks),
            train_on_hints=request.POST.get("train_on_hints") == "on",
            filters={"benchmarks": benchmarks},
            by=request.user,
        )
    except DatasetError as exc:
        messages.error(request, str(exc))
        return redirect("curation-dataset-list")
    return redirect(version)


@require_GET
@role_required(Role.REVIEWER)
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_object_or_404(DatasetVersion, pk=pk)
    entries = version.entries.select_related("trajectory__problem__benchmark")[:500]
    charts = trajectory_charts(
        Trajectory.objects.filter(pk__in=version.entries.values("trajectory"))
    )
    context = {"v": version, "entries": entries, "charts": charts}
    return render(request, "curation/dataset_detail.html", context)


@require_GET
@role_required(Role.REVIEWER)
def dataset_download(request: HttpRequest, pk: int, name: str) -> FileResponse:
    version = get_object_or_404(DatasetVersion, pk=pk)
    try:
        path = dataset_file(version, name)
    except DatasetError as exc:
        raise Http404(str(exc)) from None
    filename = f"{version.name}-{version.content_hash[:12]}-{name}".replace(" ", "_")
    return FileResponse(path.open("rb"), as_attachment=True, filename=filename)
