from __future__ import annotations

from django.contrib import admin

from .models import Benchmark, Job, Problem


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
    readonly_fields = ["content_hash", "created_at", "updated_at"]
    list_select_related = ["benchmark"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "queue", "worker", "attempts", "created_at"]
    list_filter = ["kind", "status", "queue"]
    readonly_fields = ["task_id", "created_at", "started_at", "heartbeat_at", "finished_at"]
