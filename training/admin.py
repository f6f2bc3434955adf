from __future__ import annotations

from django.contrib import admin

from .models import EvaluationScore, TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    """Read-mostly: runs are launched and controlled from the Training pages."""

    list_display = ("id", "name", "kind", "model", "step", "max_steps", "outcome", "created_at")
    list_filter = ("kind", "outcome")
    search_fields = ("name",)
    raw_id_fields = ("job", "model", "dataset", "endpoint", "created_by")
    readonly_fields = ("config", "resolved_config", "command", "log_tail", "checkpoints", "results")


@admin.register(EvaluationScore)
class EvaluationScoreAdmin(admin.ModelAdmin):
    list_display = ("run", "benchmark", "problems", "samples", "pass_at_1")
    list_filter = ("benchmark",)
