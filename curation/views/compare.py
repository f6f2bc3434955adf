"""Two trajectories of a problem side by side, aligned at the branch point."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET

from ..models import Trajectory
from ..roles import Role, role_required
from .presenters import step_views


@require_GET
@role_required(Role.REVIEWER)
def trajectory_compare(request: HttpRequest, left: int, right: int) -> HttpResponse:
    a = get_object_or_404(Trajectory.objects.select_related("problem__benchmark"), pk=left)
    b = get_object_or_404(Trajectory.objects.select_related("problem__benchmark"), pk=right)
    if a.problem_id != b.problem_id:
        messages.error(request, "Only branches of the same problem can be compared.")
        return redirect(a.get_absolute_url())
    branch_at = b.branch_step if b.parent_id == a.pk else None
    if branch_at is None and a.parent_id == b.pk:
        branch_at = a.branch_step
    hint = getattr(b, "origin_hint", None) if b.parent_id == a.pk else None
    lefts, rights = step_views(a.steps), step_views(b.steps)
    rows = []
    for i in range(max(len(lefts), len(rights))):
        left_step = lefts[i] if i < len(lefts) else None
        right_step = rights[i] if i < len(rights) else None
        same = (
            left_step is not None
            and right_step is not None
            and (left_step.reasoning, left_step.code) == (right_step.reasoning, right_step.code)
        )
        rows.append(
            {
                "index": i,
                "left": left_step,
                "right": right_step,
                "same": same,
                "is_branch": i == branch_at,
            }
        )
    context = {"a": a, "b": b, "rows": rows, "branch_at": branch_at, "hint": hint}
    return render(request, "curation/trajectory_compare.html", context)
