"""CALM batches: many problems through generate → diagnose → hint → regenerate, and the
golden datasets frozen from what people approved."""

from __future__ import annotations

from types import MappingProxyType

from django.conf import settings
from django.db import models
from django.urls import reverse

from .endpoints import ModelEndpoint
from .problems import Problem
from .trajectories import Diagnosis, Trajectory


class Batch(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        CANCELLED = "cancelled", "Cancelled"
        DONE = "done", "Done"

    # What a batch runs with where its config does not say: the one home of these defaults
    # (the batch form's initial values, batch_create, the properties below, re-judging).
    # max_code_calls and max_new_tokens have none here: the endpoint's sampling and the
    # settings' rollout defaults apply.
    DEFAULTS = MappingProxyType({
        "samples_per_problem": 1,
        "max_interventions": 5,  # the paper's cap
        "answer_rule": "relative",
        "answer_tolerance": 1e-6,
        "concurrency": 8,
    })  # fmt: skip

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RUNNING)
    reasoner = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+")
    intervener = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+")
    # samples_per_problem, max_interventions, answer_rule, answer_tolerance, max_code_calls,
    # max_new_tokens, concurrency (items advanced together: requests in flight per endpoint).
    config = models.JSONField(default=dict)
    selection = models.JSONField(default=dict, help_text="How the problems were chosen.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("curation-batch-detail", args=[self.pk])

    @property
    def max_interventions(self) -> int:
        return int(self.config.get("max_interventions", self.DEFAULTS["max_interventions"]))

    @property
    def concurrency(self) -> int:
        return max(1, int(self.config.get("concurrency", self.DEFAULTS["concurrency"])))


class BatchItem(models.Model):
    """One (problem, sample) of a batch and where it stands in the CALM loop."""

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Phase(models.TextChoices):
        GENERATE = "generate", "Generate"
        DIAGNOSE = "diagnose", "Diagnose"
        INTERVENE = "intervene", "Intervene"

    class Outcome(models.TextChoices):
        CANDIDATE = "candidate", "Golden candidate (correct and flawless)"
        WRONG_FLAWLESS = "wrong_flawless", "Judged flawless but wrong"
        CAP_REACHED = "cap_reached", "Intervention cap reached"
        ERROR = "error", "Error"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    problem = models.ForeignKey(Problem, on_delete=models.PROTECT, related_name="+")
    sample_index = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.WAITING)
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.GENERATE)
    rounds = models.PositiveIntegerField(default=0, help_text="Interventions so far.")
    root = models.ForeignKey(
        Trajectory, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trajectory = models.ForeignKey(
        Trajectory, null=True, blank=True, on_delete=models.SET_NULL, related_name="batch_items"
    )
    pending_diagnosis = models.ForeignKey(
        Diagnosis, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    error = models.TextField(blank=True)
    error_kind = models.CharField(max_length=40, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When a driver first took the item: with ``finished_at``, its duration (the batch's ETA).
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "problem", "sample_index"], name="batch_item_once"
            )
        ]
        indexes = [models.Index(fields=["batch", "state"])]

    def __str__(self) -> str:
        return f"{self.batch} · {self.problem} #{self.sample_index}"

    @property
    def activity(self) -> str:
        """Where the item stands, in a reviewer's words: queued, generating, diagnosing,
        hinted n times (and what it does now), done (correct or not), failed."""
        hinted = f"hinted {self.rounds} time{'s' if self.rounds != 1 else ''}"
        if self.state == self.State.FAILED:
            return f"failed ({self.error_kind or 'error'})"
        if self.state == self.State.DONE:
            correct = self.trajectory.is_correct if self.trajectory_id else None
            verdict = {True: "correct", False: "wrong"}.get(correct, "not judged")
            return f"done · {verdict}" + (f" · {hinted}" if self.rounds else "")
        waiting = self.state == self.State.WAITING
        if self.phase == self.Phase.GENERATE:
            return "queued" if waiting else "generating"
        if self.phase == self.Phase.INTERVENE:
            doing = f"continuing after hint {self.rounds + 1}"
            return f"{hinted} · {doing}" + (" (queued)" if waiting else "")
        doing = "diagnosing" + (" (queued)" if waiting else "")
        return f"{hinted} · {doing}" if self.rounds else doing


class BatchRound(models.Model):
    """One intervention of the loop: the verdict, the hint and what the branch changed."""

    item = models.ForeignKey(BatchItem, on_delete=models.CASCADE, related_name="round_log")
    number = models.PositiveIntegerField()
    diagnosis = models.ForeignKey(Diagnosis, null=True, on_delete=models.SET_NULL, related_name="+")
    before = models.ForeignKey(Trajectory, null=True, on_delete=models.SET_NULL, related_name="+")
    after = models.ForeignKey(Trajectory, null=True, on_delete=models.SET_NULL, related_name="+")
    correct_before = models.BooleanField(null=True)
    correct_after = models.BooleanField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item", "number"]
        constraints = [models.UniqueConstraint(fields=["item", "number"], name="round_once")]

    def __str__(self) -> str:
        return f"Round {self.number} of {self.item}"

    @property
    def fixed(self) -> bool:
        return bool(self.correct_after) and not self.correct_before
