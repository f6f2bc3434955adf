"""Review workflow: expiring locks, next-in-queue, decisions."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import ReviewDecision, ReviewLock, Trajectory


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


def review_lock_release(*, trajectory: Trajectory, reviewer) -> None:
    ReviewLock.objects.filter(trajectory=trajectory, reviewer=reviewer).delete()


def review_next(*, reviewer, queue) -> Trajectory | None:
    """Lock and return the first trajectory of ``queue`` (a queryset) nobody else holds."""
    now = timezone.now()
    free = queue.exclude(Q(review_lock__locked_until__gte=now) & ~Q(review_lock__reviewer=reviewer))
    for trajectory in free[:20]:
        if review_lock_acquire(trajectory=trajectory, reviewer=reviewer):
            return trajectory
    return None


def review_decide(*, trajectory: Trajectory, decision: str, by, reason: str = "") -> ReviewDecision:
    """Record a decision (approve as golden, reject, needs work) and release the lock."""
    if decision not in ReviewDecision.Decision.values:
        raise ValueError(f"unknown decision {decision!r}")
    with transaction.atomic():
        made = ReviewDecision.objects.create(
            trajectory=trajectory, decision=decision, reason=reason.strip(), author=by
        )
        review_lock_release(trajectory=trajectory, reviewer=by)
    return made
