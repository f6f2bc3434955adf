"""Celery tasks of the curation app (found by autodiscovery here); each takes ids and calls one
service. Routing to queues is by task-name prefix, in settings.CELERY_TASK_ROUTES."""

from __future__ import annotations

from .generation import (
    batch_advance_task,
    batches_tick_task,
    continue_task,
    diagnose_task,
    generate_task,
)
from .imports import jobs_reap_task, problems_import_task

__all__ = [
    "batch_advance_task",
    "batches_tick_task",
    "continue_task",
    "diagnose_task",
    "generate_task",
    "jobs_reap_task",
    "problems_import_task",
]
