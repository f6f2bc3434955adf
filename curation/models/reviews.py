"""Human review of trajectories: decisions (kept, never overwritten), expiring locks, lead
takeovers, assignments, the number of approvals a batch needs, and comment threads."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .batches import Batch
from .trajectories import Trajectory


class ReviewDecision(models.Model):
    """One person's decision on a trajectory. A later decision by the same person supersedes
    theirs (the row stays, ``superseded`` set); other people's decisions are independent
    opinions, which is what second opinions count."""

    class Decision(models.TextChoices):
        APPROVED = "approved", "Approved as golden"
        REJECTED = "rejected", "Rejected"
        NEEDS_WORK = "needs_work", "Needs work"

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="decisions")
    decision = models.CharField(max_length=20, choices=Decision.choices)
    reason = models.TextField(blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    # The author held the lead role when deciding: such a decision settles the outcome and
    # only a lead may change it.
    by_lead = models.BooleanField(default=False)
    superseded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["trajectory", "-created_at"]),
            models.Index(fields=["trajectory", "superseded"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.author} on #{self.trajectory_id}"


class ReviewLock(models.Model):
    """Who is reviewing a trajectory, until when. An expired lock is free for anyone."""

    trajectory = models.OneToOneField(
        Trajectory, on_delete=models.CASCADE, related_name="review_lock"
    )
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    locked_until = models.DateTimeField()
    assigned_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"#{self.trajectory_id} locked by {self.reviewer} until {self.locked_until:%H:%M}"


class LockTakeover(models.Model):
    """A lead took a trajectory over from the reviewer who held its lock (kept for the record)."""

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="takeovers")
    taken_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    taken_from = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"#{self.trajectory_id} taken over by {self.taken_by} from {self.taken_from}"


class ReviewAssignment(models.Model):
    """A lead put a trajectory on a named reviewer's queue (it comes first there)."""

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="assignments")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_assignments"
    )
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trajectory", "reviewer"], name="assigned_once")
        ]

    def __str__(self) -> str:
        return f"#{self.trajectory_id} assigned to {self.reviewer}"


class BatchReviewPolicy(models.Model):
    """How many independent approvals make a trajectory of this batch golden (the queue's
    default, ``REVIEW_REQUIRED_APPROVALS``, applies to batches without one)."""

    batch = models.OneToOneField(Batch, on_delete=models.CASCADE, related_name="review_policy")
    required_approvals = models.PositiveSmallIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.batch}: {self.required_approvals} approval(s)"


class Comment(models.Model):
    """One message of a thread on a step (``step_index``) or on the whole trajectory (None)."""

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="comments")
    step_index = models.IntegerField(null=True, blank=True)
    text = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["trajectory", "step_index"])]

    def __str__(self) -> str:
        where = "trajectory" if self.step_index is None else f"step {self.step_index}"
        return f"Comment by {self.author} on {where} of #{self.trajectory_id}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
