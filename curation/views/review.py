"""The review queue (page links, assignment by leads), next-in-queue, the lock of a
trajectory (renew, take over, release) and the leads' adjudication list."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from ..formats.review_rows import as_csv, as_jsonl, review_rows
from ..forms import as_int
from ..models import Batch, Benchmark, LockTakeover, Trajectory
from ..roles import Role, role_required
from ..selectors.batches import batch_trajectories
from ..selectors.reviews import (
    current_decisions,
    disputed_trajectories,
    queue_breakdown,
    queue_breakdown_text,
    review_queue,
)
from ..selectors.trajectories import trajectories_filtered
from ..services.reviews import (
    ReviewError,
    batch_review_policy_set,
    review_assign,
    review_lock_holder,
    review_lock_release,
    review_lock_renew,
    review_lock_take_over,
    review_next,
)

FILTERS = ("benchmark", "correctness", "flaws", "source", "candidates")
SESSION_FILTERS = "review_filters"


def _filters(data) -> dict:
    return {name: data.get(name, "")[:50] for name in FILTERS}


def queue_filters(request: HttpRequest) -> dict:
    """The filters the reviewer last chose on the queue (kept in their session), so ``n``
    on a trajectory page stays inside them."""
    return {**dict.fromkeys(FILTERS, ""), **request.session.get(SESSION_FILTERS, {})}


def next_in_queue(request: HttpRequest, *, current: int | None = None) -> HttpResponse:
    """Lock the reviewer's next item within their filters and open it (or go to the queue)."""
    queue = review_queue(**queue_filters(request), reviewer=request.user)
    trajectory = review_next(reviewer=request.user, queue=queue, current=current)
    if trajectory is None:
        counts = queue_breakdown(queue, request.user, timezone.now())
        why = queue_breakdown_text(counts)
        message = "Nothing else awaits you in the review queue (with your filters)"
        if counts["total"]:
            message += f": of the {counts['total']} awaiting review, {why}"
        message += "."
        messages.info(request, message)
        return redirect("curation-review-queue")
    return redirect(f"{trajectory.get_absolute_url()}?from=queue")


@require_GET
@vary_on_headers("HX-Request")
@role_required(Role.REVIEWER)
def review_queue_page(request: HttpRequest) -> HttpResponse:
    filters = _filters(request.GET)
    request.session[SESSION_FILTERS] = filters
    queue = review_queue(**filters, reviewer=request.user)
    page = Paginator(queue, 50).get_page(request.GET.get("page"))
    query = urlencode({k: v for k, v in filters.items() if v})
    breakdown = queue_breakdown(queue, request.user, timezone.now())
    context = {
        "page": page,
        "breakdown": breakdown,
        "breakdown_text": queue_breakdown_text(breakdown),
        "filters": filters,
        "query": query,
        "benchmarks": Benchmark.objects.all(),
        "sources": Trajectory.Source.choices,
        "now": timezone.now(),
        "reviewers": get_user_model()
        .objects.filter(groups__name__in=["reviewer", "lead"])
        .distinct()
        .order_by("username"),
    }
    template = "curation/review_queue.html"
    if request.htmx:
        template += "#queue-table"
    return render(request, template, context)


@require_POST
@role_required(Role.REVIEWER)
def review_next_view(request: HttpRequest) -> HttpResponse:
    """Lock the next trajectory of the reviewer's queue and open it. From the queue page
    the form carries the filters; from a trajectory page, the session's and ``current``."""
    if "benchmark" in request.POST:
        request.session[SESSION_FILTERS] = _filters(request.POST)
    return next_in_queue(request, current=as_int(request.POST.get("current")))


@require_POST
@role_required(Role.LEAD)
def review_assign_view(request: HttpRequest) -> HttpResponse:
    """Assign the ticked trajectories, or the whole filtered queue, to a named reviewer."""
    reviewer = get_user_model().objects.filter(pk=as_int(request.POST.get("reviewer"))).first()
    filters = _filters(request.POST)
    if request.POST.get("scope") == "filter":
        ids = list(review_queue(**filters).values_list("pk", flat=True))
    else:
        ids = [i for i in map(as_int, request.POST.getlist("trajectory")) if i is not None]
    if reviewer is None or not ids:
        messages.error(request, "Choose a reviewer and at least one trajectory to assign.")
    else:
        try:
            added = review_assign(trajectories=ids, reviewer=reviewer, by=request.user)
            messages.success(request, f"Assigned {added} trajectories to {reviewer}.")
        except ReviewError as exc:
            messages.error(request, str(exc))
    query = urlencode({k: v for k, v in filters.items() if v})
    return redirect(f"{reverse('curation-review-queue')}?{query}")


def lock_context(trajectory: Trajectory) -> dict:
    """What the lock badge shows: the holder and until when, and the recorded takeovers."""
    return {
        "t": trajectory,
        "lock": review_lock_holder(trajectory=trajectory),
        "takeovers": LockTakeover.objects.filter(trajectory=trajectory).select_related(
            "taken_by", "taken_from"
        )[:5],
        "renew_every_s": settings.REVIEW_LOCK_RENEW_S,
    }


@require_POST
@role_required(Role.REVIEWER)
def lock_renew(request: HttpRequest, pk: int) -> HttpResponse:
    """The page calls this while the reviewer is active: extend their lock, or take a free
    one; show who holds it either way."""
    trajectory = get_object_or_404(Trajectory, pk=pk)
    review_lock_renew(trajectory=trajectory, reviewer=request.user)
    if not request.htmx:
        return redirect(trajectory)
    return render(request, "curation/_lock_status.html", lock_context(trajectory))


@require_POST
@role_required(Role.LEAD)
def lock_take_over(request: HttpRequest, pk: int) -> HttpResponse:
    trajectory = get_object_or_404(Trajectory, pk=pk)
    takeover = review_lock_take_over(trajectory=trajectory, lead=request.user)
    who = takeover.taken_from or "nobody"
    messages.success(request, f"You took trajectory #{pk} over from {who}.")
    return redirect(trajectory)


@require_POST
@role_required(Role.REVIEWER)
def lock_release(request: HttpRequest, pk: int) -> HttpResponse:
    trajectory = get_object_or_404(Trajectory, pk=pk)
    review_lock_release(trajectory=trajectory, reviewer=request.user)
    messages.info(request, f"You released trajectory #{pk}.")
    return redirect("curation-review-queue")


@require_GET
@role_required(Role.LEAD)
def adjudication_page(request: HttpRequest) -> HttpResponse:
    """Approve against reject: both sides with their reasons, for a lead to settle."""
    rows = [
        {"t": t, "decisions": list(current_decisions(t))} for t in disputed_trajectories()[:200]
    ]
    return render(request, "curation/review_adjudication.html", {"rows": rows})


@require_POST
@role_required(Role.LEAD)
def batch_review_policy_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Set how many independent approvals make a trajectory of this batch golden."""
    batch = get_object_or_404(Batch, pk=pk)
    try:
        policy = batch_review_policy_set(
            batch=batch,
            required_approvals=as_int(request.POST.get("required_approvals")) or 0,
            by=request.user,
        )
        messages.success(request, f"{batch}: {policy.required_approvals} approval(s) make golden.")
    except ReviewError as exc:
        messages.error(request, str(exc))
    return redirect("curation-batch-detail", pk=batch.pk)


EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


@require_GET
@role_required(Role.LEAD)
def review_export_view(request: HttpRequest) -> HttpResponse:
    """Labels, comments and decisions of a batch (``batch``) or of a queue filter, with
    provenance, as CSV or JSON Lines (streamed: a large batch is not built in memory)."""
    fmt = request.GET.get("format", "csv")
    if fmt not in EXPORT_TYPES:
        return HttpResponseBadRequest("format must be csv or jsonl", content_type="text/plain")
    batch = request.GET.get("batch", "")
    if batch:
        if as_int(batch) is None:
            return HttpResponseBadRequest("batch must be a batch id", content_type="text/plain")
        trajectories = batch_trajectories(get_object_or_404(Batch, pk=as_int(batch)))
        scope = f"batch-{batch}"
    else:
        trajectories = trajectories_filtered(**_filters(request.GET))
        scope = "filter"
    rows = review_rows(trajectories)
    response = StreamingHttpResponse(
        as_csv(rows) if fmt == "csv" else as_jsonl(rows), content_type=EXPORT_TYPES[fmt]
    )
    response["Content-Disposition"] = f'attachment; filename="review-{scope}.{fmt}"'
    return response
