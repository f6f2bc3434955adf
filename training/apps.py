from __future__ import annotations

from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """The Django side of training: run records, the pages that launch and watch them, and the
    ``gpu`` task that runs the Django-free entry points (``training.scripts.sft`` ...) as
    subprocesses."""

    name = "training"
    verbose_name = "Training"
    default_auto_field = "django.db.models.BigAutoField"
