"""Training in the Django admin: shown, not rewritten. A run is launched, controlled and
relaunched from the Training pages (its overrides pass their allow-list there); its scores come
from the evaluation itself. Only a run's name may be edited here."""

from __future__ import annotations

from django.contrib import admin

from .models import EvaluationScore, TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "kind", "model", "step", "max_steps", "outcome", "created_at")
    list_filter = ("kind", "outcome")
    search_fields = ("name",)
    raw_id_fields = ("job", "model", "dataset", "endpoint", "created_by")
    readonly_fields = tuple(
        f.name for f in TrainingRun._meta.fields if f.name not in ("id", "name")
    )

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(EvaluationScore)
class EvaluationScoreAdmin(admin.ModelAdmin):
    list_display = ("run", "benchmark", "problems", "samples", "pass_at_1")
    list_filter = ("benchmark",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
