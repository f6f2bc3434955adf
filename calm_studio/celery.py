"""The Celery app: Redis broker, three queues, routing by task, a beat schedule."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue as KombuQueue

from .queues import ALL_QUEUES, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "calm_studio.settings")

app = Celery("calm_studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [KombuQueue(name, routing_key=name) for name in ALL_QUEUES]
app.conf.task_default_queue = Queue.DEFAULT.value
app.autodiscover_tasks(["curation", "solver_sandbox", "training"])

# Imported for its signal handlers: workers announce their queues in Redis for /healthz.
from . import worker_presence  # noqa: E402, F401
