"""Background job pages: live status and progress, cancel, retry."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from ..forms import as_int
from ..models import Hint, Job, Trajectory
from ..roles import Role, has_role, require_role, role_required
from ..selectors.jobs import jobs_visible_to
from ..services.jobs import job_cancel, job_retry


def _may_control(user, job: Job) -> bool:
    """Cancel and retry belong to the job's creator and to leads: a retry re-runs the
    creator's action (a lead's generation job, say) under the new person's name."""
    return job.created_by_id == user.pk or has_role(user, Role.LEAD)


def _require_control(user, job: Job) -> None:
    if not _may_control(user, job):
        raise PermissionDenied("Only the person who started this job, or a lead, can do that.")


def live_pieces(job: Job, have: list[str]) -> list[dict]:
    """What the job page needs of each live item, given how many characters of it the page
    already shows (``have``): the new text only ("append"), or the whole tail when the page
    has nothing yet or fell behind the stored tail ("full"). Appending keeps the reader's
    scroll and selection while a branch grows."""
    pieces = []
    for pos, item in enumerate((job.live or {}).get("items", [])):
        text = str(item.get("text", ""))
        chars = int(item.get("chars", len(text)))  # absolute length; text is its tail
        start = chars - len(text)
        known = as_int(have[pos]) if pos < len(have) else None
        if known is not None and start <= known <= chars:
            piece = {"mode": "append", "text": text[known - start :]}
        else:
            piece = {"mode": "new" if known is None else "reset", "text": text}
        pieces.append({**piece, "pos": pos, "item": item, "chars": chars})
    return pieces


def _job_context(job: Job, user, have: list[str] | None = None) -> dict:
    context: dict = {
        "job": job,
        "can_control": _may_control(user, job),
        "live": live_pieces(job, have or []),
    }
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
    if job.kind == Job.Kind.SERVE_CHECKPOINT:  # its progress shows on the run's page
        return redirect("training-run-detail", pk=job.params.get("run_id"))
    template = "curation/job_detail.html"
    have = None
    if request.htmx:
        template += "#job-poll"
        have = request.GET.getlist("have")
    return render(request, template, _job_context(job, request.user, have))


TRAINING_KINDS = (Job.Kind.SFT, Job.Kind.GRPO, Job.Kind.EVALUATE, Job.Kind.SERVE_CHECKPOINT)


@require_POST
@role_required(Role.REVIEWER)
def job_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(jobs_visible_to(request.user), pk=pk)
    _require_control(request.user, job)
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
    _require_control(request.user, job)
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
