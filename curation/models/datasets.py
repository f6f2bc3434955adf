"""Frozen golden datasets: an immutable snapshot of approved trajectories, with its exports."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from .trajectories import Trajectory


class DatasetVersion(models.Model):
    name = models.CharField(max_length=200)
    note = models.TextField(blank=True)
    train_on_hints = models.BooleanField(default=True)
    filters = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, help_text="sha256 of the exported files.")
    counts = models.JSONField(default=dict)
    stats = models.JSONField(default=dict)
    # The one tokenizer and prompt set of every record (freezing refuses a mix), and the
    # Reasoner endpoints that generated them.
    tokenizer_fingerprint = models.CharField(max_length=64, blank=True)
    prompts = models.JSONField(default=dict, blank=True)
    endpoints = models.JSONField(default=list, blank=True)
    directory = models.CharField(max_length=500, help_text="Where the export files are.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    trajectories = models.ManyToManyField(Trajectory, through="DatasetEntry", related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.content_hash[:12]})"

    def get_absolute_url(self) -> str:
        return reverse("curation-dataset-detail", args=[self.pk])


class DatasetEntry(models.Model):
    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="entries")
    # PROTECT: a trajectory in a frozen dataset can never be deleted from under it.
    trajectory = models.ForeignKey(Trajectory, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "trajectory"], name="dataset_entry_once")
        ]

    def __str__(self) -> str:
        return f"{self.version} #{self.position}"
