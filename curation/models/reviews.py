"""Human review of trajectories: decisions (kept, never overwritten) and expiring locks."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .trajectories import Trajectory


class ReviewDecision(models.Model):
    class Decision(models.TextChoices):
        APPROVED = "approved", "Approved as golden"
        REJECTED = "rejected", "Rejected"
        NEEDS_WORK = "needs_work", "Needs work"

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="decisions")
    decision = models.CharField(max_length=20, choices=Decision.choices)
    reason = models.TextField(blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["trajectory", "-created_at"])]

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
