"""Queries of the review workflow: where each trajectory stands (open, golden, rejected,
disputed), the queue a reviewer works through, and the adjudication list.

One rule, one place: ``with_review_state`` is the only definition of the human gate. The queue,
the golden set, the adjudication view and the trajectory page all read ``review_state``.

- Each person's latest decision is their current one (earlier ones are ``superseded``).
- A lead's current approve or reject settles the outcome (adjudication).
- Otherwise: any current rejection against an approval is a disagreement ("disputed"); a
  rejection alone rejects; enough approvals from distinct people make it golden. The author of
  the hint that made the branch never counts as an approval of it.
- How many approvals: the batch's ``BatchReviewPolicy``, else ``REVIEW_REQUIRED_APPROVALS``.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from ..models import (
    BatchReviewPolicy,
    Hint,
    ReviewAssignment,
    ReviewDecision,
    Trajectory,
)
from .trajectories import trajectories_filtered

OPEN, GOLDEN, REJECTED, DISPUTED = "open", "golden", "rejected", "disputed"


def _distinct_authors(decisions: QuerySet) -> Coalesce:
    # order_by() clears the model's default ordering, which would otherwise join GROUP BY.
    counted = decisions.order_by().values("trajectory").annotate(n=Count("author", distinct=True))
    return Coalesce(Subquery(counted.values("n")[:1], output_field=IntegerField()), Value(0))


def with_review_state(queryset: QuerySet[Trajectory]) -> QuerySet[Trajectory]:
    """Annotate ``n_approvals``, ``n_rejections``, ``required_approvals``, ``lead_outcome``
    and ``review_state`` (one of OPEN, GOLDEN, REJECTED, DISPUTED)."""
    hint_author = Hint.objects.filter(branch=OuterRef("pk")).values("author_user_id")[:1]
    queryset = queryset.annotate(hint_author_id=Subquery(hint_author))
    current = ReviewDecision.objects.filter(trajectory=OuterRef("pk"), superseded=False)
    not_the_author = Coalesce(OuterRef("hint_author_id"), Value(-1))
    approvals = current.filter(decision=ReviewDecision.Decision.APPROVED).exclude(
        author_id=not_the_author
    )
    rejections = current.filter(decision=ReviewDecision.Decision.REJECTED)
    lead = (
        current.filter(by_lead=True, decision__in=["approved", "rejected"])
        .exclude(decision="approved", author_id=not_the_author)
        .order_by("-created_at", "-pk")
    )
    policy = BatchReviewPolicy.objects.filter(batch__items__trajectory=OuterRef("pk")).order_by(
        "-required_approvals"
    )
    queryset = queryset.annotate(
        n_approvals=_distinct_authors(approvals),
        n_rejections=_distinct_authors(rejections),
        lead_outcome=Subquery(lead.values("decision")[:1]),
        required_approvals=Coalesce(
            Subquery(policy.values("required_approvals")[:1]),
            Value(settings.REVIEW_REQUIRED_APPROVALS),
            output_field=IntegerField(),
        ),
    )
    return queryset.annotate(
        review_state=Case(
            When(lead_outcome="approved", then=Value(GOLDEN)),
            When(lead_outcome="rejected", then=Value(REJECTED)),
            When(Q(n_rejections__gt=0, n_approvals__gt=0), then=Value(DISPUTED)),
            When(n_rejections__gt=0, then=Value(REJECTED)),
            When(n_approvals__gte=F("required_approvals"), then=Value(GOLDEN)),
            default=Value(OPEN),
            output_field=CharField(),
        )
    )


def review_state_of(trajectory: Trajectory) -> Trajectory:
    """The trajectory re-read with its review annotations (for one page)."""
    return with_review_state(Trajectory.objects.filter(pk=trajectory.pk)).get()


def review_queue(*, reviewer=None, **filters) -> QuerySet[Trajectory]:
    """Trajectories still open for review (no outcome yet), filtered (``trajectories_filtered``).
    With ``reviewer``, what a lead assigned to that reviewer comes first."""
    queue = with_review_state(trajectories_filtered(**filters)).filter(review_state=OPEN)
    if reviewer is None:
        return queue.order_by("created_at", "pk")
    mine = ReviewAssignment.objects.filter(trajectory=OuterRef("pk"), reviewer=reviewer)
    return queue.annotate(assigned_to_me=Exists(mine)).order_by(
        "-assigned_to_me", "created_at", "pk"
    )


def disputed_trajectories() -> QuerySet[Trajectory]:
    """Approve against reject with no lead's decision yet: the adjudication list."""
    return (
        with_review_state(Trajectory.objects.defer("prompt_tokens", "completion_tokens", "text"))
        .filter(review_state=DISPUTED)
        .select_related("problem__benchmark")
        .order_by("created_at", "pk")
    )


def current_decisions(trajectory: Trajectory) -> QuerySet[ReviewDecision]:
    """Each person's current decision on the trajectory, newest first."""
    return trajectory.decisions.filter(superseded=False).select_related("author")


def hinted_lineages(*, user) -> set[int]:
    """The trajectories with a hint by ``user`` anywhere in their lineage: the branches their
    hints made and every branch grown from those (one query per generation)."""
    found: set[int] = set()
    frontier = set(
        Hint.objects.filter(author_user=user, branch__isnull=False).values_list(
            "branch_id", flat=True
        )
    )
    while frontier:
        found |= frontier
        frontier = (
            set(Trajectory.objects.filter(parent_id__in=frontier).values_list("pk", flat=True))
            - found
        )
    return found


def own_hint_in_lineage(*, trajectory: Trajectory, user) -> Hint | None:
    """A hint by ``user`` that made this branch or one of its ancestors, if any."""
    lineage: list[int] = []
    current = trajectory.pk
    while current is not None and current not in lineage:
        lineage.append(current)
        current = Trajectory.objects.filter(pk=current).values_list("parent_id", flat=True).first()
    return Hint.objects.filter(branch_id__in=lineage, author_user=user).order_by("pk").first()


def golden_gate(queryset: QuerySet[Trajectory]) -> QuerySet[Trajectory]:
    """Trajectories that passed the human gate (the review part of "golden")."""
    return with_review_state(queryset).filter(review_state=GOLDEN)
