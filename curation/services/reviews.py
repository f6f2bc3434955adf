"""Review workflow: locks that hold (taken, renewed, taken over by a lead), the next item of a
reviewer's queue, assignments, decisions and the number of approvals a batch needs."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..models import (
    Batch,
    BatchReviewPolicy,
    LockTakeover,
    ReviewAssignment,
    ReviewDecision,
    ReviewLock,
    Trajectory,
)
from ..roles import Role, has_role
from ..selectors.reviews import approval_concerns, own_hint_in_lineage, queue_reviewable


class ReviewError(ValueError):
    """A review action that is refused; the message is written for the person who tried."""


class ApprovalNeedsConfirmation(ReviewError):
    """An approval as golden over flaw labels or copied prompt text, not yet confirmed."""

    def __init__(self, concerns: list[str]) -> None:
        self.concerns = concerns
        super().__init__(
            "Approving this as golden needs your confirmation: "
            + "; ".join(concerns)
            + ". Check them, then tick the confirmation and approve again (it is recorded)."
        )


def approval_warnings(concerns: dict) -> list[str]:
    """The concerns (``selectors.reviews.approval_concerns``) an approver must confirm."""
    copied = [
        f"the model's text copies {c.source} word for word ({c.words} words: “{c.excerpt}”)"
        for c in concerns["copied"]
    ]
    labels = [f"flaw label on {what}" for what in concerns["others"]]
    return labels + copied


def _approval_checked(trajectory: Trajectory, by, reason: str, confirm: bool) -> str:
    """Refuse an approval over the approver's own flaw label; ask for explicit confirmation
    over anyone else's label or text copied from the prompts; return the reason to record
    (with what was confirmed, so the decision says what its author approved over)."""
    concerns = approval_concerns(trajectory, by)
    if concerns["own"]:
        raise ReviewError(
            "You labelled "
            + "; ".join(concerns["own"])
            + ". Clear or change your own label before approving this as golden."
        )
    warnings = approval_warnings(concerns)
    if warnings and not confirm:
        raise ApprovalNeedsConfirmation(warnings)
    if warnings:
        reason = f"{reason} [approved over: {'; '.join(warnings)}]".strip()
    return reason


class LockHeld(ReviewError):
    def __init__(self, lock: ReviewLock) -> None:
        self.lock = lock
        super().__init__(
            f"Trajectory #{lock.trajectory_id} is being reviewed by {lock.reviewer} until "
            f"{timezone.localtime(lock.locked_until):%H:%M} UTC; nothing was changed. "
            "A lead can take it over."
        )


def review_lock_holder(*, trajectory: Trajectory) -> ReviewLock | None:
    """The live (unexpired) lock on the trajectory, or None."""
    return (
        ReviewLock.objects.select_related("reviewer")
        .filter(trajectory=trajectory, locked_until__gte=timezone.now())
        .first()
    )


def review_lock_acquire(*, trajectory: Trajectory, reviewer) -> bool:
    """Lock the trajectory for this reviewer (or extend their lock). False if someone else
    holds an unexpired lock."""
    now = timezone.now()
    until = now + timedelta(minutes=settings.REVIEW_LOCK_MINUTES)
    # Conditional UPDATE: only a free (expired) lock or our own is taken over, so two
    # reviewers pressing "next" together cannot both get the same trajectory.
    taken = ReviewLock.objects.filter(
        Q(locked_until__lt=now) | Q(reviewer=reviewer), trajectory=trajectory
    ).update(reviewer=reviewer, locked_until=until, assigned_at=now)
    if taken:
        return True
    try:
        with transaction.atomic():
            ReviewLock.objects.create(trajectory=trajectory, reviewer=reviewer, locked_until=until)
        return True
    except IntegrityError:
        return False  # someone else's live lock exists


def review_lock_require(*, trajectory: Trajectory, user) -> None:
    """Let ``user`` act on the trajectory (label, hint, decide) only as the lock's holder.

    A free trajectory is locked for them on the way; someone else's live lock raises
    ``LockHeld``, leads included (a lead takes over explicitly, and that is recorded)."""
    if not review_lock_acquire(trajectory=trajectory, reviewer=user):
        lock = review_lock_holder(trajectory=trajectory)
        if lock is None:  # it expired between the two reads: try once more
            if review_lock_acquire(trajectory=trajectory, reviewer=user):
                return
            lock = review_lock_holder(trajectory=trajectory)
        raise LockHeld(lock)


def review_lock_renew(*, trajectory: Trajectory, reviewer) -> ReviewLock | None:
    """Extend the reviewer's lock while they are active; None if someone else holds it."""
    if not review_lock_acquire(trajectory=trajectory, reviewer=reviewer):
        return None
    return review_lock_holder(trajectory=trajectory)


def review_lock_release(*, trajectory: Trajectory, reviewer) -> None:
    ReviewLock.objects.filter(trajectory=trajectory, reviewer=reviewer).delete()


def review_lock_take_over(*, trajectory: Trajectory, lead) -> LockTakeover:
    """A lead takes the trajectory's lock from whoever holds it; the takeover is recorded."""
    if not has_role(lead, Role.LEAD):
        raise ReviewError("Only a lead can take over a trajectory someone else is reviewing.")
    now = timezone.now()
    until = now + timedelta(minutes=settings.REVIEW_LOCK_MINUTES)
    with transaction.atomic():
        # Row lock: a reviewer renewing at the same moment waits, then finds the lead's lock.
        lock = ReviewLock.objects.select_for_update().filter(trajectory=trajectory).first()
        previous = None
        if lock is not None and lock.locked_until >= now and lock.reviewer_id != lead.pk:
            previous = lock.reviewer
        ReviewLock.objects.update_or_create(
            trajectory=trajectory, defaults={"reviewer": lead, "locked_until": until}
        )
        return LockTakeover.objects.create(
            trajectory=trajectory, taken_by=lead, taken_from=previous
        )


def review_next(*, reviewer, queue: QuerySet[Trajectory], current: int | None = None):
    """Lock and return the next trajectory of ``queue`` for this reviewer, or None.

    Skips what anyone holds (the reviewer's own other items included: they are already on
    their desk), what the reviewer has decided, branches with their own hint in the lineage
    (they may not approve them) and ``current``, the item they are leaving
    (``selectors.reviews.queue_reviewable``, which the queue's counts use too)."""
    free = queue_reviewable(queue, reviewer, timezone.now())
    if current is not None:
        free = free.exclude(pk=current)
    for trajectory in free[:20]:
        # Another reviewer may win the race for this one; then try the following.
        if review_lock_acquire(trajectory=trajectory, reviewer=reviewer):
            return trajectory
    return None


def review_decide(
    *, trajectory: Trajectory, decision: str, by, reason: str = "", confirm: bool = False
) -> ReviewDecision:
    """Record a person's decision (approve as golden, reject, needs work), which supersedes
    their earlier one, and release their lock.

    Refused when someone else holds the lock, for non-leads when a lead has decided, and as an
    approval from anyone who wrote a hint in the branch's lineage (someone else hinting after
    them does not make their approval independent). An approval is refused over the approver's
    own flaw label, and needs ``confirm`` over other flaw labels or prompt text the model copied
    (``_approval_checked``)."""
    if decision not in ReviewDecision.Decision.values:
        raise ReviewError(f"Unknown decision {decision!r}.")
    if decision == ReviewDecision.Decision.APPROVED:
        own = own_hint_in_lineage(trajectory=trajectory, user=by)
        if own is not None:
            raise ReviewError(
                f"you wrote the hint that made trajectory #{own.branch_id}, in this branch's "
                "lineage, so your approval would not be independent. Reject it, mark it as "
                "needing work, or leave the approval to another reviewer."
            )
    is_lead = has_role(by, Role.LEAD)
    with transaction.atomic():
        # Serialise decisions on one trajectory (PostgreSQL; SQLite locks the whole file).
        Trajectory.objects.select_for_update().filter(pk=trajectory.pk).values("pk").first()
        if not is_lead:
            _refuse_over_a_lead(trajectory)
        review_lock_require(trajectory=trajectory, user=by)
        if decision == ReviewDecision.Decision.APPROVED:
            reason = _approval_checked(trajectory, by, reason.strip(), confirm)
        trajectory.decisions.filter(author=by, superseded=False).update(superseded=True)
        made = ReviewDecision.objects.create(
            trajectory=trajectory,
            decision=decision,
            reason=reason.strip(),
            author=by,
            by_lead=is_lead,
        )
        review_lock_release(trajectory=trajectory, reviewer=by)
    return made


def _refuse_over_a_lead(trajectory: Trajectory) -> None:
    lead_decision = (
        trajectory.decisions.filter(superseded=False, by_lead=True).select_related("author").first()
    )
    if lead_decision is not None:
        raise ReviewError(
            f"{lead_decision.author} (a lead) decided "
            f"“{lead_decision.get_decision_display()}”; only a lead can change it."
        )


def review_assign(*, trajectories: Iterable[int], reviewer, by) -> int:
    """Put trajectories (ids) on a named reviewer's queue; returns how many were new."""
    if not has_role(by, Role.LEAD):
        raise ReviewError("Only a lead can assign reviews.")
    if not has_role(reviewer, Role.REVIEWER):
        raise ReviewError(f"{reviewer} is not a reviewer.")
    ids = set(trajectories)
    with transaction.atomic():
        before = ReviewAssignment.objects.filter(reviewer=reviewer, trajectory_id__in=ids).count()
        ReviewAssignment.objects.bulk_create(
            [ReviewAssignment(trajectory_id=i, reviewer=reviewer, assigned_by=by) for i in ids],
            ignore_conflicts=True,  # already assigned to them: nothing to add
        )
        after = ReviewAssignment.objects.filter(reviewer=reviewer, trajectory_id__in=ids).count()
    return after - before


def batch_review_policy_set(*, batch: Batch, required_approvals: int, by) -> BatchReviewPolicy:
    """Set how many independent approvals make a trajectory of the batch golden."""
    if not has_role(by, Role.LEAD):
        raise ReviewError("Only a lead can change how many approvals a batch needs.")
    if not 1 <= required_approvals <= 10:
        raise ReviewError("The number of approvals must be between 1 and 10.")
    policy, _ = BatchReviewPolicy.objects.update_or_create(
        batch=batch, defaults={"required_approvals": required_approvals}
    )
    return policy
