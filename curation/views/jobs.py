"""Background job pages: live status and progress, cancel, retry."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from ..models import Hint, Job, Trajectory
from ..roles import Role, require_role, role_required
from ..selectors import jobs_visible_to
from ..services.jobs import job_cancel, job_retry


def _job_context(job: Job) -> dict:
    context: dict = {"job": job}
    if job.kind == Job.Kind.CONTINUE:
        context["hint"] = (
            Hint.objects.select_related("trajectory", "branch")
            .filter(pk=job.params.get("hint_id"))
            .first()
        )
    if job.kind == Job.Kind.DIAGNOSE:
        context["trajectory"] = Trajectory.objects.filter(
            pk=job.params.get("trajectory_id")
        ).first()
    if job.kind == Job.Kind.GENERATE and job.result:
        context["trajectory_ids"] = job.result.get("trajectory_ids", [])
    return context


@require_GET
@vary_on_headers("HX-Request")
@role_required(Role.REVIEWER)
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(jobs_visible_to(request.user), pk=pk)
    run = getattr(job, "training_run", None)
    if run is not None:  # a training job has its own page, with metrics and plots
        return redirect(run)
    template = "curation/job_detail.html"
    if request.htmx:
        template += "#job-status"
    return render(request, template, _job_context(job))


TRAINING_KINDS = (Job.Kind.SFT, Job.Kind.GRPO, Job.Kind.EVALUATE)


@require_POST
@role_required(Role.REVIEWER)
def job_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(jobs_visible_to(request.user), pk=pk)
    if job.kind in TRAINING_KINDS:
        require_role(request.user, Role.ADMIN)  # training is stopped by admins only
    if job_cancel(job_id=job.pk) and job.task_id:
        from calm_studio.celery import app

        # The worker also sees the cancel at its next heartbeat; revoke drops a queued message.
        app.control.revoke(job.task_id)
    return redirect("curation-job-detail", pk=job.pk)


@require_POST
@role_required(Role.REVIEWER)
def job_retry_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(jobs_visible_to(request.user), pk=pk)
    if job.kind == Job.Kind.IMPORT_PROBLEMS:
        messages.error(request, "Upload the file again to retry an import.")
        return redirect("curation-job-detail", pk=job.pk)
    if job.kind in TRAINING_KINDS:
        messages.error(request, "Relaunch a training run from its page.")
        return redirect("curation-job-detail", pk=job.pk)
    try:
        retried = job_retry(job=job, by=request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect("curation-job-detail", pk=job.pk)
    return redirect("curation-job-detail", pk=retried.pk)
