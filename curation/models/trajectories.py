"""Trajectories (a tree per problem), hints, flaw labels and Intervener diagnoses.

A trajectory row is written once, complete, in one transaction by the worker that generated
it; nothing half-written is ever visible. Branches are new rows pointing at their parent.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from .endpoints import ModelEndpoint
from .jobs import Job
from .problems import Problem
from .taxonomy import FlawType


class Trajectory(models.Model):
    class Source(models.TextChoices):
        GENERATED = "generated", "Generated"
        HINTED = "hinted", "Continued from a hint"
        IMPORTED = "imported", "Imported"
        # A sample of a benchmark evaluation (training.TrainingRun): measurement, not CALM data,
        # so the review queue leaves it out unless asked for it.
        EVALUATED = "evaluated", "Evaluation sample"

    problem = models.ForeignKey(Problem, on_delete=models.PROTECT, related_name="trajectories")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="branches"
    )
    # Where the branch leaves its parent: the step and the completion token offset of the cut.
    branch_step = models.IntegerField(null=True, blank=True)
    branch_token = models.IntegerField(null=True, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.GENERATED)
    endpoint = models.ForeignKey(
        ModelEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Token ids and one tag per token (model, interpreter, hint), packed by the engine.
    prompt_tokens = models.BinaryField()
    completion_tokens = models.BinaryField()
    text = models.TextField(help_text="The decoded completion.")
    steps = models.JSONField(default=list)
    finish_reason = models.CharField(max_length=40)
    final_answer = models.TextField(blank=True)
    final_value = models.FloatField(null=True, blank=True)
    answer_source = models.CharField(max_length=40, blank=True)
    # The last optimal objective the sandbox saw: shown beside the stated answer, credited only
    # where CALM_CREDIT_SANDBOX_ANSWER says so.
    sandbox_objective = models.FloatField(null=True, blank=True)
    # What the engine could not guarantee while generating (e.g. a text-only server that
    # tokenized the prompt differently from the stored ids), shown on the trajectory page.
    warnings = models.JSONField(default=list, blank=True)
    # Which tokenizer made the ids (curation.engine.fingerprint: vocabulary, special tokens and
    # chat template) and the prompts the ids were made with: a golden set is one model's data.
    tokenizer_fingerprint = models.CharField(max_length=64, blank=True, db_index=True)
    prompts = models.JSONField(default=dict, blank=True)
    is_correct = models.BooleanField(null=True)
    n_prompt_tokens = models.PositiveIntegerField(default=0)
    n_model_tokens = models.PositiveIntegerField(default=0)
    n_interpreter_tokens = models.PositiveIntegerField(default=0)
    n_hint_tokens = models.PositiveIntegerField(default=0)
    n_code_calls = models.PositiveIntegerField(default=0)
    n_failed_code_calls = models.PositiveIntegerField(default=0)
    config = models.JSONField(default=dict, blank=True)
    wall_ms = models.PositiveIntegerField(default=0)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL)
    # Position of this result inside its job: with the job, the idempotency key of a rerun.
    job_index = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["job", "job_index"], name="trajectory_once_per_job")
        ]
        indexes = [models.Index(fields=["problem", "created_at"])]
        verbose_name_plural = "trajectories"

    def __str__(self) -> str:
        return f"Trajectory #{self.pk} of {self.problem}"

    def get_absolute_url(self) -> str:
        return reverse("curation-trajectory-detail", args=[self.pk])

    @property
    def n_generated_tokens(self) -> int:
        return self.n_model_tokens + self.n_interpreter_tokens + self.n_hint_tokens

    @property
    def token_modification_ratio(self) -> float | None:
        """Hint tokens over all generated tokens: CALM's headline statistic (paper: < 2.6%)."""
        generated = self.n_model_tokens + self.n_hint_tokens
        return self.n_hint_tokens / generated if generated else None


class Hint(models.Model):
    """A hint inserted at a step (by a person or a model), and the branch it produced."""

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="hints")
    step_index = models.IntegerField()
    # Where in the step's reasoning the hint goes (None: before the step). The worker maps it
    # to a completion token offset with the Reasoner's tokenizer and fills token_offset.
    char_offset = models.IntegerField(null=True, blank=True)
    token_offset = models.IntegerField(null=True, blank=True)
    text = models.TextField()
    # How the cut was chosen when it was not plain (e.g. an Intervener's quote that is not in
    # the step: then the hint goes before the step, and this says so).
    cut_note = models.CharField(max_length=300, blank=True)
    flaw_type = models.ForeignKey(FlawType, null=True, blank=True, on_delete=models.SET_NULL)
    author_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    author_endpoint = models.ForeignKey(
        ModelEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    diagnosis = models.ForeignKey(
        "Diagnosis", null=True, blank=True, on_delete=models.SET_NULL, related_name="hints"
    )
    branch = models.OneToOneField(
        Trajectory, null=True, blank=True, on_delete=models.SET_NULL, related_name="origin_hint"
    )
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    # A person's hint that states the reference value is inserted only once confirmed: the
    # value as written, who confirmed that the hint may give the answer away, and when.
    reveals_value = models.CharField(max_length=100, blank=True)
    reveal_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    reveal_confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"Hint at step {self.step_index} of #{self.trajectory_id}"

    @property
    def author_label(self) -> str:
        if self.author_endpoint_id:
            return f"model: {self.author_endpoint}"
        return f"human: {self.author_user}" if self.author_user_id else "unknown"


class FlawLabel(models.Model):
    """One labelling event on a step. Rows are only ever added: the latest row per (step,
    author) is that author's current label, the rest is its history."""

    class Source(models.TextChoices):
        HUMAN = "human", "Human"
        MODEL = "model", "Model"

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="labels")
    step_index = models.IntegerField()
    # None means "no flaw here" (a removal, or an explicit clean label).
    flaw_type = models.ForeignKey(FlawType, null=True, blank=True, on_delete=models.PROTECT)
    source = models.CharField(max_length=10, choices=Source.choices)
    author_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    author_endpoint = models.ForeignKey(
        ModelEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["trajectory", "step_index"])]

    def __str__(self) -> str:
        return f"{self.flaw_type or 'no flaw'} on step {self.step_index} ({self.author_label})"

    @property
    def author_label(self) -> str:
        if self.source == self.Source.MODEL:
            return f"model: {self.author_endpoint or 'unknown'}"
        return f"human: {self.author_user or 'unknown'}"


class Diagnosis(models.Model):
    """An Intervener's verdict on a trajectory, valid or not (the raw text is always kept)."""

    class Status(models.TextChoices):
        OK = "ok", "Valid verdict"
        ERROR = "error", "Intervener error"

    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="diagnoses")
    endpoint = models.ForeignKey(ModelEndpoint, null=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=10, choices=Status.choices)
    flawless = models.BooleanField(null=True)
    step_index = models.IntegerField(null=True, blank=True)
    flaw_type = models.ForeignKey(FlawType, null=True, blank=True, on_delete=models.SET_NULL)
    hint = models.TextField(blank=True)
    # The first wrong sentence of the flawed step, quoted by the Intervener (may be empty).
    quote = models.TextField(blank=True)
    rationale = models.TextField(blank=True)
    raw = models.TextField(blank=True)
    error = models.TextField(blank=True)
    # A reviewer dismissed the suggestion (the verdict itself is kept).
    dismissed = models.BooleanField(default=False)
    # Which part of the Intervener made the verdict: its LLM, or a check over the execution
    # record (``check_name`` names it); ``findings``: what the checks found, told to the LLM.
    source = models.CharField(
        max_length=10, choices=[("llm", "LLM"), ("checks", "Checks")], default="llm"
    )
    check_name = models.CharField(max_length=40, blank=True)
    findings = models.JSONField(default=list, blank=True)
    job = models.OneToOneField(Job, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "diagnoses"

    def __str__(self) -> str:
        return f"Diagnosis #{self.pk} of trajectory #{self.trajectory_id}"


class CheckFinding(models.Model):
    """A reviewer's decision on what a check over the execution record found at a step:
    accepted (it became the reviewer's label) or dismissed. One per (trajectory, step, check):
    a decided finding is not offered again for that step."""

    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted as a label"
        DISMISSED = "dismissed", "Dismissed"

    trajectory = models.ForeignKey(
        Trajectory, on_delete=models.CASCADE, related_name="check_findings"
    )
    step_index = models.IntegerField()
    check_name = models.CharField(max_length=40)
    flaw_type = models.ForeignKey(FlawType, null=True, blank=True, on_delete=models.SET_NULL)
    evidence = models.TextField()
    hint = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    label = models.ForeignKey(
        FlawLabel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trajectory", "step_index", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["trajectory", "step_index", "check_name"], name="check_finding_once"
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.check_name} at step {self.step_index} of #{self.trajectory_id} ({self.status})"
        )
