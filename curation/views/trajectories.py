"""The trajectory page and its actions: labels, hints, the Intervener, decisions."""

from __future__ import annotations

from django.contrib import messages
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from ..forms import DecisionForm, FlawLabelForm, HintForm
from ..models import Diagnosis, FlawType, Hint, Job, ReviewDecision, Trajectory
from ..roles import Role, role_required
from ..selectors.datasets import golden_standing
from ..selectors.labels import current_labels, label_history
from ..selectors.reviews import (
    approval_concerns,
    current_decisions,
    own_hint_in_lineage,
    review_state_of,
)
from ..selectors.trajectories import trajectory_tree, trajectory_verdicts
from ..services.checks import CheckError, check_finding_decide, open_findings
from ..services.comments import comments_by_step
from ..services.diagnoses import diagnosis_request
from ..services.hints import hint_insert
from ..services.jobs import JobLimitReached
from ..services.labels import LabelError, flaw_label_set
from ..services.reviews import (
    LockHeld,
    ReviewError,
    approval_warnings,
    review_decide,
    review_lock_holder,
    review_lock_require,
)
from ..services.trajectories import GenerationError
from .presenters import finding_view, flaw_options, step_views
from .review import lock_context, next_in_queue


def _get_trajectory(pk: int) -> Trajectory:
    return get_object_or_404(
        Trajectory.objects.select_related("problem__benchmark", "endpoint", "parent"), pk=pk
    )


def _steps(trajectory: Trajectory, user=None) -> tuple[list, dict, list]:
    """The step cards (labels, comment threads and the verdicts that name the step attached;
    ``user``'s own label marked for the menu), the comment threads, and the verdicts that
    name no step of it (flawless ones, errors)."""
    threads = comments_by_step(trajectory)
    views = step_views(trajectory.steps, current_labels(trajectory), _hint_texts(trajectory))
    findings = open_findings(trajectory)
    verdicts = trajectory_verdicts(trajectory)
    for view in views:
        view.comments = threads.get(view.index, [])
        view.findings = [finding_view(f) for f in findings.get(view.index, [])]
        view.verdicts = [d for d in verdicts if _names_step(d) and d.step_index == view.index]
        mine = [
            label for label in view.labels
            if label.source == "human" and user is not None and label.author_user_id == user.pk
        ]  # fmt: skip
        view.my_flaw_type_id = mine[-1].flaw_type_id if mine else None
    placed = {d.pk for view in views for d in view.verdicts}
    return views, threads, [d for d in verdicts if d.pk not in placed]


def _hint_texts(trajectory: Trajectory) -> list[str]:
    """The texts of the hints that made this branch and its ancestors (each branch keeps its
    parent's steps up to the branch point, hints included)."""
    texts, seen, node = [], set(), trajectory
    while node is not None and node.parent_id and node.pk not in seen:
        seen.add(node.pk)
        hint = Hint.objects.filter(branch=node).only("text").first()
        if hint is not None:
            texts.append(hint.text)
        node = Trajectory.objects.filter(pk=node.parent_id).only("pk", "parent_id").first()
    return texts


def _names_step(diagnosis: Diagnosis) -> bool:
    return diagnosis.status == Diagnosis.Status.OK and diagnosis.flawless is False


def _page_context(request: HttpRequest, trajectory: Trajectory) -> dict:
    steps, threads, unplaced = _steps(trajectory, request.user)
    diagnoses = [d for view in steps for d in view.verdicts] + unplaced
    diagnoses.sort(key=lambda d: (d.created_at, d.pk), reverse=True)
    return {
        "t": trajectory,
        "problem": trajectory.problem,
        "steps": steps,
        "trajectory_comments": threads.get(None, []),
        "flaw_options": flaw_options(FlawType.objects.filter(active=True)),
        "focus": request.GET.get("step", ""),
        "review": review_state_of(trajectory),
        "golden": golden_standing(trajectory),
        "decisions": list(current_decisions(trajectory)),
        # A hint of theirs in the lineage: their approval is refused (services.reviews).
        "own_lineage_hint": own_hint_in_lineage(trajectory=trajectory, user=request.user),
        **lock_context(trajectory),
        "diagnoses": diagnoses,
        "unplaced_verdicts": unplaced,
        "suggestion": next((d for d in diagnoses if _is_open_suggestion(d)), None),
        "active_jobs": _active_jobs(trajectory),
        "hints": trajectory.hints.select_related("author_user", "author_endpoint", "branch"),
        "tree": trajectory_tree(trajectory.problem),
        "decision_form": DecisionForm(),
        "approval": _approval_context(trajectory, request.user),
    }


def _approval_context(trajectory: Trajectory, user) -> dict:
    """What the approver is told before approving as golden: their own flaw labels (approval
    refused until cleared) and what needs their confirmation."""
    concerns = approval_concerns(trajectory, user)
    return {"own": concerns["own"], "warnings": approval_warnings(concerns)}


def _active_jobs(trajectory: Trajectory) -> list[Job]:
    """Continuations and diagnoses of this trajectory still queued or running."""
    hinted = trajectory.hints.exclude(job=None).values_list("job_id", flat=True)
    return list(
        Job.objects.filter(status__in=Job.ACTIVE)
        .filter(
            models.Q(pk__in=list(hinted))
            | models.Q(kind=Job.Kind.DIAGNOSE, params__trajectory_id=trajectory.pk)
        )
        .order_by("created_at")
    )


def _is_open_suggestion(diagnosis: Diagnosis) -> bool:
    return _names_step(diagnosis) and not diagnosis.hinted and not diagnosis.dismissed


@require_GET
@vary_on_headers("HX-Request")
@role_required(Role.REVIEWER)
def trajectory_detail(request: HttpRequest, pk: int) -> HttpResponse:
    trajectory = _get_trajectory(pk)
    # A GET takes no lock ("next" in the queue, a POST, took it); it warns when someone else
    # holds one.
    lock = review_lock_holder(trajectory=trajectory)
    if request.GET.get("from") == "queue" and lock and lock.reviewer_id != request.user.pk:
        messages.warning(request, "Someone else is reviewing this trajectory (see its lock).")
    return render(request, "curation/trajectory_detail.html", _page_context(request, trajectory))


def _refused(request: HttpRequest, trajectory: Trajectory) -> str | None:
    """Why the user may not change this trajectory now (someone else holds its lock)."""
    try:
        review_lock_require(trajectory=trajectory, user=request.user)
    except LockHeld as exc:
        return str(exc)
    return None


@require_POST
@role_required(Role.REVIEWER)
def step_label(request: HttpRequest, pk: int, step: int) -> HttpResponse:
    trajectory = _get_trajectory(pk)
    form = FlawLabelForm(request.POST)
    refusal = _refused(request, trajectory)
    status = 409 if refusal else 400
    if refusal:
        form.is_valid()
        form.add_error(None, refusal)
    elif form.is_valid():
        try:
            flaw_label_set(
                trajectory=trajectory,
                step_index=step,
                flaw_type=form.cleaned_data["flaw_type"],
                by_user=request.user,
                note=form.cleaned_data["note"],
                reason=form.cleaned_data["reason"],
            )
        except LabelError as exc:
            form.add_error(None, str(exc))
    if not request.htmx:
        if form.errors:
            messages.error(request, form.errors.as_text())
        return redirect(f"{trajectory.get_absolute_url()}?step={step}#step-{step}")
    view, _, _ = _steps(trajectory, request.user)
    if not 0 <= step < len(view):
        return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain")
    options = flaw_options(FlawType.objects.filter(active=True))
    context = {"t": trajectory, "s": view[step], "flaw_options": options, "form": form}
    return render(
        request, "curation/_step_card.html", context, status=status if form.errors else 200
    )


@require_GET
@role_required(Role.REVIEWER)
def step_history(request: HttpRequest, pk: int, step: int) -> HttpResponse:
    trajectory = _get_trajectory(pk)
    context = {
        "t": trajectory,
        "step": step,
        "history": label_history(trajectory, step),
        "comments": comments_by_step(trajectory).get(step, []),
    }
    template = "curation/step_history.html"
    if request.htmx:
        template += "#history"
    return render(request, template, context)


@require_POST
@role_required(Role.REVIEWER)
def hint_create(request: HttpRequest, pk: int) -> HttpResponse:
    trajectory = _get_trajectory(pk)
    refusal = _refused(request, trajectory)
    if refusal:
        messages.error(request, f"The hint was not inserted: {refusal}")
        return redirect(trajectory.get_absolute_url())
    form = HintForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The hint was not inserted: " + form.errors.as_text())
        return redirect(trajectory.get_absolute_url())
    diagnosis = None
    if form.cleaned_data.get("diagnosis"):
        diagnosis = trajectory.diagnoses.filter(pk=form.cleaned_data["diagnosis"]).first()
    try:
        hint = hint_insert(
            trajectory=trajectory,
            step_index=form.cleaned_data["step"],
            char_offset=form.cleaned_data.get("char_offset"),
            text=form.cleaned_data["text"],
            flaw_type=form.cleaned_data.get("flaw_type"),
            diagnosis=diagnosis,
            by_user=request.user,
            confirm_reveal=form.cleaned_data["confirm_reveal"],
        )
    except (GenerationError, JobLimitReached) as exc:  # HintRevealsAnswer says how to confirm
        messages.error(request, f"The hint was not inserted: {exc}")
        return redirect(trajectory.get_absolute_url())
    return redirect(reverse("curation-job-detail", args=[hint.job_id]))


@require_POST
@role_required(Role.REVIEWER)
def trajectory_diagnose(request: HttpRequest, pk: int) -> HttpResponse:
    trajectory = _get_trajectory(pk)
    try:
        job = diagnosis_request(trajectory=trajectory, by=request.user)
    except (GenerationError, JobLimitReached) as exc:
        messages.error(request, str(exc))
        return redirect(trajectory.get_absolute_url())
    return redirect(reverse("curation-job-detail", args=[job.pk]))


@require_POST
@role_required(Role.REVIEWER)
def suggestion_dismiss(request: HttpRequest, pk: int, diagnosis: int) -> HttpResponse:
    trajectory = _get_trajectory(pk)
    refusal = _refused(request, trajectory)
    if refusal:
        messages.error(request, f"Nothing was dismissed: {refusal}")
    else:
        trajectory.diagnoses.filter(pk=diagnosis).update(dismissed=True)
    return redirect(trajectory.get_absolute_url())


@require_POST
@role_required(Role.REVIEWER)
def check_finding_decide_view(request: HttpRequest, pk: int, step: int) -> HttpResponse:
    """Accept a check's finding at a step as the reviewer's label, or dismiss it."""
    trajectory = _get_trajectory(pk)
    decision = request.POST.get("decision")
    refusal = _refused(request, trajectory)
    if refusal:
        messages.error(request, refusal)
    elif decision not in ("accept", "dismiss"):
        messages.error(request, "Choose accept or dismiss.")
    else:
        try:
            check_finding_decide(
                trajectory=trajectory, step_index=step, check=request.POST.get("check", ""),
                accept=decision == "accept", by=request.user,
            )  # fmt: skip
        except (CheckError, LabelError) as exc:
            messages.error(request, f"Nothing was decided: {exc}")
    return redirect(f"{trajectory.get_absolute_url()}?step={step}#step-{step}")


@require_POST
@role_required(Role.REVIEWER)
def trajectory_decide(request: HttpRequest, pk: int) -> HttpResponse:
    trajectory = _get_trajectory(pk)
    form = DecisionForm(request.POST)
    decided = False
    if form.is_valid():
        try:
            review_decide(
                trajectory=trajectory,
                decision=form.cleaned_data["decision"],
                reason=form.cleaned_data["reason"],
                by=request.user,
                confirm=form.cleaned_data["confirm"],
            )
            decided = True
            label = dict(ReviewDecision.Decision.choices)[form.cleaned_data["decision"]]
            messages.success(request, f"Trajectory #{trajectory.pk}: {label}.")
        except ReviewError as exc:
            messages.error(request, f"Nothing was decided: {exc}")
    else:
        messages.error(request, form.errors.as_text())
    if decided and request.POST.get("next") == "queue":
        return next_in_queue(request, current=trajectory.pk)
    return redirect(trajectory.get_absolute_url())
