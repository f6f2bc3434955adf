"""Review queue, next-in-queue, and side-by-side comparison of branches."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from ..models import Benchmark, Trajectory
from ..roles import Role, role_required
from ..selectors import review_queue
from ..services.reviews import review_next
from .presenters import step_views

FILTERS = ("benchmark", "correctness", "flaws", "source", "candidates")


def _filters(request: HttpRequest) -> dict:
    return {name: request.GET.get(name, "")[:50] for name in FILTERS}


@require_GET
@vary_on_headers("HX-Request")
@role_required(Role.REVIEWER)
def review_queue_page(request: HttpRequest) -> HttpResponse:
    filters = _filters(request)
    page = Paginator(review_queue(**filters), 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filters": filters,
        "benchmarks": Benchmark.objects.all(),
        "sources": Trajectory.Source.choices,
        "now": timezone.now(),
    }
    template = "curation/review_queue.html"
    if request.htmx:
        template += "#queue-table"
    return render(request, template, context)


@require_POST
@role_required(Role.REVIEWER)
def review_next_view(request: HttpRequest) -> HttpResponse:
    """Lock the next trajectory nobody else is reviewing and open it."""
    filters = {name: request.POST.get(name, "")[:50] for name in FILTERS}
    trajectory = review_next(reviewer=request.user, queue=review_queue(**filters))
    if trajectory is None:
        messages.info(request, "The review queue is empty.")
        return redirect("curation-review-queue")
    return redirect(f"{trajectory.get_absolute_url()}?from=queue")


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
