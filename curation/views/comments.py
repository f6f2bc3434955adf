"""Comment threads on the trajectory page (a form that works without htmx; htmx swaps the
thread)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ..forms import as_int
from ..models import Comment, Trajectory
from ..roles import Role, role_required
from ..services.comments import CommentError, comment_add, comment_resolve, comments_by_step
from ..services.reviews import LockHeld, review_lock_require


def _thread(request: HttpRequest, trajectory: Trajectory, step: int | None, *, error: str = ""):
    context = {
        "t": trajectory,
        "step": step,
        "thread": comments_by_step(trajectory).get(step, []),
        "comment_error": error,
    }
    return render(request, "curation/_comments.html", context, status=400 if error else 200)


def _back(trajectory: Trajectory, step: int | None) -> HttpResponse:
    if step is None:
        return redirect(f"{trajectory.get_absolute_url()}#comments-t")
    return redirect(f"{trajectory.get_absolute_url()}?step={step}#step-{step}")


@require_POST
@role_required(Role.REVIEWER)
def comment_create(request: HttpRequest, pk: int) -> HttpResponse:
    trajectory = get_object_or_404(Trajectory, pk=pk)
    step = as_int(request.POST.get("step"))
    error = ""
    try:
        comment_add(trajectory=trajectory, step_index=step, text=request.POST.get("text", ""),
                    by=request.user)  # fmt: skip
    except CommentError as exc:
        error = str(exc)
    if request.htmx:
        return _thread(request, trajectory, step, error=error)
    if error:
        messages.error(request, f"The comment was not added: {error}")
    return _back(trajectory, step)


@require_POST
@role_required(Role.REVIEWER)
def comment_resolve_view(request: HttpRequest, pk: int, comment: int) -> HttpResponse:
    found = get_object_or_404(
        Comment.objects.select_related("trajectory"), pk=comment, trajectory=pk
    )
    try:  # while someone else holds the lock, their trajectory's threads are theirs to close
        review_lock_require(trajectory=found.trajectory, user=request.user)
    except LockHeld as exc:
        messages.error(request, f"The comment stays open: {exc}")
        return _back(found.trajectory, found.step_index)
    comment_resolve(comment=found, by=request.user)
    if request.htmx:
        return _thread(request, found.trajectory, found.step_index)
    return _back(found.trajectory, found.step_index)
