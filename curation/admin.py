"""The Django admin: every model is visible to admins, but the records the review workflow
and the answer history rest on are read-only here. A reference answer changes through a flag a
lead accepts (a new answer version), a decision through the trajectory page, a verdict through
the Intervener: the admin cannot skip a version, forge or delete a decision, or rewrite who
wrote a hint, what the Intervener said or whether an answer was correct."""

from __future__ import annotations

from django.contrib import admin

from .models import (
    AnswerFlag,
    AnswerVersion,
    Batch,
    BatchItem,
    BatchReviewPolicy,
    BatchRound,
    Benchmark,
    CheckFinding,
    Comment,
    DatasetEntry,
    DatasetVersion,
    Diagnosis,
    FlawCategory,
    FlawLabel,
    FlawType,
    Hint,
    Job,
    LockTakeover,
    ModelEndpoint,
    Problem,
    ReviewAssignment,
    ReviewDecision,
    ReviewLock,
    Trajectory,
)


class RecordAdmin(admin.ModelAdmin):
    """A record the workflow writes: shown, never added, changed or deleted here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Benchmark)
class BenchmarkAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "licence", "created_at"]
    search_fields = ["name"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Problem)
class ProblemAdmin(admin.ModelAdmin):
    list_display = ["external_id", "benchmark", "answer", "answer_status", "updated_at"]
    list_filter = ["benchmark", "answer_status"]
    search_fields = ["external_id", "question"]
    # The answer and its version change only through an accepted flag (a new AnswerVersion).
    readonly_fields = [
        "answer", "answer_status", "answer_version", "content_hash", "created_at", "updated_at",
    ]  # fmt: skip
    list_select_related = ["benchmark"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "queue", "worker", "attempts", "created_at"]
    list_filter = ["kind", "status", "queue"]
    readonly_fields = ["task_id", "created_at", "started_at", "heartbeat_at", "finished_at"]


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin):
    list_display = ["name", "role", "backend", "model", "base_url", "active"]
    list_filter = ["role", "backend", "active"]
    search_fields = ["name", "model"]


class FlawTypeInline(admin.TabularInline):
    model = FlawType
    extra = 0


@admin.register(FlawCategory)
class FlawCategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "order"]
    inlines = [FlawTypeInline]


@admin.register(FlawType)
class FlawTypeAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "category", "order", "active"]
    list_filter = ["category", "active"]


@admin.register(Trajectory)
class TrajectoryAdmin(RecordAdmin):
    # Written once by the worker that generated it (its correctness feeds the golden filter).
    list_display = ["id", "problem", "source", "endpoint", "is_correct", "n_code_calls"]
    list_filter = ["source", "is_correct", "endpoint"]
    raw_id_fields = ["problem", "parent", "job", "created_by"]
    exclude = ["prompt_tokens", "completion_tokens"]
    list_select_related = ["problem__benchmark", "endpoint"]


@admin.register(Hint)
class HintAdmin(RecordAdmin):
    # Who wrote a hint decides whose approval of its branches counts.
    list_display = ["id", "trajectory", "step_index", "author_user", "author_endpoint", "branch"]
    raw_id_fields = ["trajectory", "branch", "job", "diagnosis"]


@admin.register(FlawLabel)
class FlawLabelAdmin(RecordAdmin):
    # History is append-only, and a label is its author's (never one the admin writes for them).
    list_display = ["trajectory", "step_index", "flaw_type", "source", "created_at"]
    list_filter = ["source", "flaw_type"]
    raw_id_fields = ["trajectory"]


@admin.register(Diagnosis)
class DiagnosisAdmin(RecordAdmin):
    list_display = ["id", "trajectory", "endpoint", "status", "source", "flawless", "step_index"]
    list_filter = ["status", "source", "flawless"]
    raw_id_fields = ["trajectory", "job"]


@admin.register(CheckFinding)
class CheckFindingAdmin(RecordAdmin):
    list_display = ["id", "trajectory", "step_index", "check_name", "status", "decided_by"]
    list_filter = ["status", "check_name"]
    raw_id_fields = ["trajectory", "label"]


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "reasoner", "intervener", "created_at"]
    list_filter = ["status"]


@admin.register(BatchItem)
class BatchItemAdmin(admin.ModelAdmin):
    list_display = ["id", "batch", "problem", "sample_index", "state", "phase", "rounds", "outcome"]
    list_filter = ["state", "phase", "outcome"]
    raw_id_fields = ["batch", "problem", "root", "trajectory", "pending_diagnosis"]


@admin.register(BatchRound)
class BatchRoundAdmin(admin.ModelAdmin):
    list_display = ["item", "number", "correct_before", "correct_after"]
    raw_id_fields = ["item", "diagnosis", "before", "after"]


@admin.register(ReviewDecision)
class ReviewDecisionAdmin(RecordAdmin):
    list_display = ["trajectory", "decision", "author", "by_lead", "superseded", "created_at"]
    list_filter = ["decision", "by_lead", "superseded"]
    raw_id_fields = ["trajectory"]


@admin.register(ReviewLock)
class ReviewLockAdmin(admin.ModelAdmin):
    list_display = ["trajectory", "reviewer", "locked_until"]
    raw_id_fields = ["trajectory"]


@admin.register(LockTakeover)
class LockTakeoverAdmin(RecordAdmin):
    list_display = ["trajectory", "taken_by", "taken_from", "created_at"]
    raw_id_fields = ["trajectory"]


@admin.register(ReviewAssignment)
class ReviewAssignmentAdmin(admin.ModelAdmin):
    list_display = ["trajectory", "reviewer", "assigned_by", "created_at"]
    raw_id_fields = ["trajectory"]


@admin.register(BatchReviewPolicy)
class BatchReviewPolicyAdmin(RecordAdmin):
    # Set on the batch page (1 to 10 approvals): 0 here would make every trajectory golden.
    list_display = ["batch", "required_approvals"]


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["trajectory", "step_index", "author", "created_at", "resolved_at"]
    raw_id_fields = ["trajectory"]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "content_hash", "created_by", "created_at"]
    readonly_fields = [f.name for f in DatasetVersion._meta.fields]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a frozen version is immutable


@admin.register(DatasetEntry)
class DatasetEntryAdmin(admin.ModelAdmin):
    list_display = ["version", "position", "trajectory"]
    raw_id_fields = ["version", "trajectory"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AnswerVersion)
class AnswerVersionAdmin(RecordAdmin):
    # History: versions are made by imports and accepted flags, never edited by hand.
    list_display = ["problem", "number", "answer", "answer_status", "origin", "created_at"]
    list_filter = ["origin"]
    readonly_fields = [f.name for f in AnswerVersion._meta.fields]
    list_select_related = ["problem__benchmark"]


@admin.register(AnswerFlag)
class AnswerFlagAdmin(RecordAdmin):
    list_display = ["problem", "status", "proposed_answer", "raised_by", "decided_by", "created_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in AnswerFlag._meta.fields]
    list_select_related = ["problem__benchmark", "raised_by", "decided_by"]
