"""The problem bank: benchmarks and optimization problems with reference answers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.text import slugify


class AnswerStatus(models.TextChoices):
    VALUE = "value", "Optimal value"
    NO_BEST_SOLUTION = "no_best_solution", "No optimal solution"
    INFEASIBLE_MARKER = "infeasible_marker", "Infeasible (sentinel answer)"


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    DEV = "dev", "Dev"
    TEST = "test", "Test"


class SplitSource(models.TextChoices):
    HASH = "hash", "From a hash of the question"
    FILE = "file", "From the problem file"
    LEAD = "lead", "Set by a lead"


# The default shares of a problem's split, drawn from a hash of its question (settings:
# CALM_SPLIT_RATIOS). The same question lands in the same split in every benchmark.
DEFAULT_SPLIT_RATIOS = {"train": 0.8, "dev": 0.1, "test": 0.1}


def split_for(question: str, ratios: dict[str, float] | None = None) -> str:
    """The deterministic default split of a problem: a hash of its normalised question,
    placed on the cumulative ``ratios`` (train, dev, test)."""
    import hashlib

    ratios = ratios or getattr(settings, "CALM_SPLIT_RATIOS", None) or DEFAULT_SPLIT_RATIOS
    normal = " ".join(question.lower().split())
    point = int(hashlib.sha256(normal.encode()).hexdigest()[:12], 16) / 16**12
    total = sum(ratios.values()) or 1.0
    edge = 0.0
    for name in (Split.TRAIN, Split.DEV, Split.TEST):
        edge += ratios.get(name, 0.0) / total
        if point < edge:
            return name
    return Split.TEST


class Benchmark(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    licence = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self.slug:
            self.slug = self.slug_for(self.name)
        super().save(*args, **kwargs)

    @staticmethod
    def slug_for(name: str) -> str:
        """The slug a new benchmark of this name gets (an import checks it is free first)."""
        return slugify(name)[:100] or "benchmark"


class Problem(models.Model):
    """One natural-language optimization problem and the optimal objective value it should get.

    ``answer`` is None when the correct response is "no optimal solution" (``answer_status``
    says which marker the source used). ``external_id`` is unique within a benchmark and is the
    key that makes re-imports idempotent.
    """

    benchmark = models.ForeignKey(Benchmark, on_delete=models.PROTECT, related_name="problems")
    external_id = models.CharField(max_length=200)
    question = models.TextField()
    answer = models.FloatField(null=True, blank=True)
    answer_status = models.CharField(
        max_length=32, choices=AnswerStatus.choices, default=AnswerStatus.VALUE
    )
    source_repo = models.CharField(max_length=200, blank=True)
    source_path = models.CharField(max_length=500, blank=True)
    source_commit = models.CharField(max_length=64, blank=True)
    source_index = models.IntegerField(null=True, blank=True)
    source_id = models.CharField(max_length=200, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    # sha256 of the normalised record: an import compares it to tell "unchanged" from "updated".
    content_hash = models.CharField(max_length=64)
    # train / dev / test: where the problem may be used (batches and GRPO draw from train by
    # default; an evaluation records its overlap with what its checkpoint was trained on).
    split = models.CharField(max_length=8, choices=Split.choices, blank=True, db_index=True)
    split_source = models.CharField(
        max_length=8, choices=SplitSource.choices, default=SplitSource.HASH
    )
    # The number of the current AnswerVersion (answer / answer_status above are its values).
    answer_version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["benchmark__name", "source_index", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["benchmark", "external_id"], name="problem_unique_external_id"
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(answer_status=AnswerStatus.VALUE, answer__isnull=False)
                    | (~models.Q(answer_status=AnswerStatus.VALUE) & models.Q(answer__isnull=True))
                ),
                name="problem_answer_matches_status",
            ),
        ]
        indexes = [models.Index(fields=["benchmark", "answer_status"])]

    def __str__(self) -> str:
        return f"{self.benchmark.name} / {self.external_id}"

    def save(self, *args, **kwargs) -> None:
        if not self.split:
            self.split = split_for(self.question)
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("curation-problem-detail", args=[self.pk])

    @property
    def has_optimal_value(self) -> bool:
        return self.answer_status == AnswerStatus.VALUE


class AnswerVersion(models.Model):
    """One version of a problem's reference answer. The problem row carries the current one;
    earlier versions stay here, so an evaluation that used version 1 can still say so after a
    correction or a corrected source file gave version 2."""

    class Origin(models.TextChoices):
        IMPORT = "import", "Imported"
        CORRECTION = "correction", "Accepted correction"

    problem = models.ForeignKey(Problem, on_delete=models.CASCADE, related_name="answer_versions")
    number = models.PositiveIntegerField()
    answer = models.FloatField(null=True, blank=True)
    answer_status = models.CharField(max_length=32, choices=AnswerStatus.choices)
    origin = models.CharField(max_length=20, choices=Origin.choices)
    note = models.TextField(blank=True, help_text="The file it came from, or the flag's reason.")
    flag = models.OneToOneField(
        "AnswerFlag", null=True, blank=True, on_delete=models.SET_NULL, related_name="version"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["problem", "number"]
        constraints = [
            models.UniqueConstraint(fields=["problem", "number"], name="answer_version_once")
        ]

    def __str__(self) -> str:
        return f"{self.problem} answer v{self.number}"


class AnswerFlag(models.Model):
    """A reviewer's claim that a reference answer is wrong, with a reason and a proposed value,
    and a lead's decision on it. Accepting it gives the problem a new answer version."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    problem = models.ForeignKey(Problem, on_delete=models.CASCADE, related_name="answer_flags")
    against_version = models.PositiveIntegerField(help_text="The answer version it questions.")
    reason = models.TextField()
    proposed_answer = models.FloatField(null=True, blank=True)
    proposed_status = models.CharField(
        max_length=32, choices=AnswerStatus.choices, default=AnswerStatus.VALUE
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="answer_flags"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )  # fmt: skip
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["problem", "-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(proposed_status=AnswerStatus.VALUE, proposed_answer__isnull=False)
                    | (
                        ~models.Q(proposed_status=AnswerStatus.VALUE)
                        & models.Q(proposed_answer__isnull=True)
                    )
                ),
                name="answer_flag_proposal_matches_status",
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_status_display()} flag on {self.problem}"
