from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from calm_studio.queues import Queue

from ..formats.problem_files import ImportFileError
from ..forms import ImportConfirmForm, ProblemUploadForm
from ..models import Job
from ..roles import Role, role_required
from ..services.jobs import job_create
from ..services.problem_uploads import (
    UploadNotFound,
    problem_upload_discard,
    problem_upload_parse,
    problem_upload_save,
    upload_filename,
)
from ..services.problems import problems_import_plan

PREVIEW_ROWS = 5


@require_http_methods(["GET", "POST"])
@role_required(Role.LEAD)
def problem_import_upload(request: HttpRequest) -> HttpResponse:
    form = ProblemUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        token = problem_upload_save(name=upload.name, chunks=upload.chunks())
        url = reverse("curation-problem-import-preview", args=[token])
        benchmark = form.cleaned_data["benchmark"].strip()
        # Encoded: a name such as "R&D #1 + more" must reach the preview whole.
        return redirect(f"{url}?{urlencode({'benchmark': benchmark})}" if benchmark else url)
    return render(request, "curation/problem_import.html", {"form": form})


@require_http_methods(["GET", "POST"])
@role_required(Role.LEAD)
def problem_import_preview(request: HttpRequest, token: str) -> HttpResponse:
    form = ImportConfirmForm(request.POST or request.GET or None)
    benchmark = form.data.get("benchmark", "").strip()[:100] if form.data else ""
    context: dict = {"token": token, "benchmark": benchmark}
    try:
        context["filename"] = upload_filename(token)
        parsed = problem_upload_parse(token=token, benchmark=benchmark)
    except UploadNotFound as exc:
        context["error"] = str(exc)
        return render(request, "curation/problem_import_preview.html", context, status=404)
    except ImportFileError as exc:
        # Nothing is imported from a file with one bad record; the stored upload goes too.
        problem_upload_discard(token=token)
        context["error"] = str(exc)
        return render(request, "curation/problem_import_preview.html", context, status=400)

    if request.method == "POST":
        if "discard" in request.POST:
            problem_upload_discard(token=token)
            return redirect("curation-problem-import")
        job = job_create(
            kind=Job.Kind.IMPORT_PROBLEMS,
            queue=Queue.DEFAULT,
            params={"token": token, "benchmark": benchmark, "filename": parsed.filename},
            by=request.user,
        )
        return redirect("curation-job-detail", pk=job.pk)

    context.update(
        parsed=parsed,
        preview=parsed.records[:PREVIEW_ROWS],
        plan=problems_import_plan(records=parsed.records),
    )
    return render(request, "curation/problem_import_preview.html", context)
