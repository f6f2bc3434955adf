"""Training runs: SFT, GRPO and evaluation jobs, their metrics over time and their scores.

A run's lifecycle (queued, running, heartbeat, cancel, reaping) is its ``curation.Job`` row;
this row holds what is specific to training: what was trained on what, with which
configuration, what the subprocess reported, and what it left behind.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from curation.models import DatasetVersion, Job, ModelEndpoint


class TrainingRun(models.Model):
    class Kind(models.TextChoices):
        SFT = "sft", "SFT"
        GRPO = "grpo", "GRPO"
        EVALUATE = "evaluate", "Evaluation"

    class Outcome(models.TextChoices):
        # What the subprocess's last ``done`` event said (the job row says what the app did).
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled with a checkpoint"
        FAILED = "failed", "Failed"

    job = models.OneToOneField(Job, on_delete=models.PROTECT, related_name="training_run")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=200)
    # The starting weights (SFT, GRPO) or the model evaluated: a registered checkpoint is an
    # endpoint too, so "base model or checkpoint" is always one of these.
    model = models.ForeignKey(ModelEndpoint, on_delete=models.PROTECT, related_name="+")
    dataset = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # GRPO prompts and evaluation problems: {"benchmarks": [...], "per_benchmark": N, "seed": s}.
    problem_selection = models.JSONField(default=dict, blank=True)
    preset = models.CharField(max_length=100, help_text="A YAML file in training/scripts/configs/.")
    overrides = models.JSONField(default=dict, blank=True)
    # The preset merged with the form's fields and the overrides: the --config file launched.
    config = models.JSONField(default=dict)
    # Every argument the script ended up with (its ``start`` event), TRL's defaults included.
    resolved_config = models.JSONField(null=True, blank=True)
    accelerate_config = models.CharField(max_length=100, blank=True)
    num_processes = models.PositiveSmallIntegerField(default=1)
    output_dir = models.CharField(max_length=500)
    step = models.PositiveIntegerField(default=0)
    max_steps = models.PositiveIntegerField(null=True, blank=True)
    elapsed_s = models.FloatField(default=0.0)
    # The script's last ``phase`` event (phase, time, its counts): what the run does now.
    phase = models.JSONField(default=dict, blank=True)
    log_tail = models.TextField(blank=True)
    command = models.JSONField(default=list, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    checkpoint = models.CharField(max_length=500, blank=True, help_text="The newest one.")
    checkpoints = models.JSONField(default=list, blank=True)
    results = models.JSONField(null=True, blank=True, help_text="Evaluation summary.")
    # An evaluation's overlap with everything its checkpoint was trained on (its lineage's
    # datasets and GRPO problems; training/services/overlap.py), and its problems per split.
    overlap = models.JSONField(default=dict, blank=True)
    endpoint = models.OneToOneField(
        ModelEndpoint,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="trained_by",
        help_text="The checkpoint, registered as a model endpoint.",
    )
    # The checkpoint as a GGUF served by llama.cpp's own server ("serve this checkpoint").
    served_endpoint = models.OneToOneField(
        ModelEndpoint,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="served_from",
        help_text="The checkpoint converted to GGUF and served by llama-server.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} run #{self.pk} {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("training-run-detail", args=[self.pk])

    @property
    def is_training(self) -> bool:
        return self.kind in (self.Kind.SFT, self.Kind.GRPO)

    @property
    def progress_percent(self) -> int | None:
        if not self.max_steps:
            return None
        return min(100, round(100 * self.step / self.max_steps))


class RunMetric(models.Model):
    """One ``step`` or ``eval`` event of a run's metrics file (the values as written)."""

    class Event(models.TextChoices):
        STEP = "step", "Training step"
        EVAL = "eval", "Evaluation"

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="metrics")
    event = models.CharField(max_length=10, choices=Event.choices)
    step = models.PositiveIntegerField()
    epoch = models.FloatField(null=True, blank=True)
    elapsed_s = models.FloatField(default=0.0)
    values = models.JSONField(default=dict)

    class Meta:
        ordering = ["run", "event", "step"]
        constraints = [
            # A resumed attempt reports some steps again: the newest report of a step wins.
            models.UniqueConstraint(fields=["run", "event", "step"], name="run_metric_once")
        ]

    def __str__(self) -> str:
        return f"{self.event} {self.step} of run #{self.run_id}"


class EvaluationScore(models.Model):
    """The figures of one evaluation run on one benchmark under one answer rule (fractions, as
    results.json has them). The evaluation's own scores hold the stored answers (``answers``:
    per problem its reference, answer version and samples' final answers and outcomes); a
    re-judged score (``rejudged``) is computed from those under another rule."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="scores")
    benchmark = models.CharField(max_length=100)
    rule = models.CharField(max_length=40, blank=True, help_text="An answer-rule preset.")
    tolerance = models.FloatField(null=True, blank=True, help_text="The tolerance applied.")
    # "sirl", "storm-paper (ε=0.001)": the rule as shown; scores are unique per run, benchmark
    # and label, so one run can carry its own figures and re-judged ones.
    rule_label = models.CharField(max_length=80, blank=True)
    mode = models.CharField(max_length=10, default="mean", help_text="mean | any (of k)")
    problems = models.PositiveIntegerField()
    samples = models.PositiveIntegerField()
    pass_at_1 = models.FloatField(help_text="Mean over problems of the share of correct samples.")
    any_of_k = models.FloatField(null=True, blank=True, help_text="Share with a correct sample.")
    correct = models.PositiveIntegerField(default=0)
    wrong = models.PositiveIntegerField(default=0)
    no_answer = models.PositiveIntegerField(default=0)
    endpoint_errors = models.PositiveIntegerField(default=0)
    brier = models.FloatField(null=True, blank=True)
    confidences = models.PositiveIntegerField(default=0, help_text="Samples that stated one.")
    code_calls_mean = models.FloatField(null=True, blank=True)
    response_tokens_mean = models.FloatField(null=True, blank=True)
    rejudged = models.BooleanField(default=False)
    answers = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, null=True)

    class Meta:
        ordering = ["run", "benchmark", "rejudged", "rule_label"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "benchmark", "rule_label"], name="evaluation_score_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.benchmark}: {100 * self.score:.1f}% ({self.rule_label}, run #{self.run_id})"

    @property
    def score(self) -> float:
        """The figure the evaluation's mode names: pass@1 (mean over k) or any of k."""
        if self.mode == "any" and self.any_of_k is not None:
            return self.any_of_k
        return self.pass_at_1

    @property
    def judged_as(self) -> str:
        """What makes two figures comparable in one column: the rule and the mode."""
        figure = "any of k" if self.mode == "any" else "pass@1"
        return f"{self.rule_label or 'unrecorded rule'} · {figure}"
