"""Celery task of the training app (``training.*`` is routed to the ``gpu`` queue): one run,
as a subprocess. Run ``gpu`` workers with ``--concurrency`` = the number of runs the host can
hold at once (one per GPU; ``-c 1`` with a multi-GPU accelerate config)."""

from __future__ import annotations

from celery import shared_task

from .services.launcher import run_job_execute
from .services.serving import serve_job_execute


@shared_task(bind=True, name="training.run")
def run_task(self, job_id: int) -> str | None:
    job = run_job_execute(job_id=job_id, worker=self.request.hostname or "worker")
    return job.status if job else None


@shared_task(bind=True, name="training.serve_checkpoint")
def serve_checkpoint_task(self, job_id: int) -> str | None:
    """A run's checkpoint to GGUF, served by llama-server, registered as an endpoint."""
    job = serve_job_execute(job_id=job_id, worker=self.request.hostname or "worker")
    return job.status if job else None
