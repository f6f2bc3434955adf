"""A database row for every piece of background work, created before its task is queued.

The row is the truth about a job: the Celery message only carries its id. A worker claims the
row with a conditional UPDATE (so a redelivered message never doubles the work), heartbeats
while it runs, and finishes it in one write. A periodic reaper fails jobs whose heartbeat
stopped, which is how a killed worker's job becomes visible as failed instead of hanging.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Job(models.Model):
    class Kind(models.TextChoices):
        IMPORT_PROBLEMS = "import_problems", "Import problems"
        GENERATE = "generate", "Generate trajectories"
        CONTINUE = "continue", "Continue from a hint"
        DIAGNOSE = "diagnose", "Diagnose with the Intervener"
        BATCH = "batch", "CALM batch"
        # Training runs (their details in training.TrainingRun), on the gpu queue.
        SFT = "sft", "SFT training"
        GRPO = "grpo", "GRPO training"
        EVALUATE = "evaluate", "Evaluation"
        # A run's checkpoint converted to GGUF and served by llama.cpp (training.services.serving).
        SERVE_CHECKPOINT = "serve_checkpoint", "Serve a checkpoint"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    kind = models.CharField(max_length=40, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    queue = models.CharField(max_length=20)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    # What a running generation has produced so far (steps as they complete), for the live
    # view. It is a preview only: the trajectory row is written once, whole, at the end.
    live = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def progress_percent(self) -> int | None:
        if not self.progress_total:
            return None
        return min(100, round(100 * self.progress_done / self.progress_total))
