"""Celery tasks on the ``gpu`` queue: generate, continue from a hint, diagnose.

Each takes a job id, claims the row and calls one service; a redelivered message finds the
job claimed or finished and does nothing.
"""

from __future__ import annotations

from celery import shared_task

from ..services.generation import continue_job_run, diagnose_job_run, generate_job_run


def _status(job) -> str | None:
    return job.status if job else None


@shared_task(bind=True, name="curation.generation.generate")
def generate_task(self, job_id: int) -> str | None:
    return _status(generate_job_run(job_id=job_id, worker=self.request.hostname or "worker"))


@shared_task(bind=True, name="curation.generation.continue")
def continue_task(self, job_id: int) -> str | None:
    return _status(continue_job_run(job_id=job_id, worker=self.request.hostname or "worker"))


@shared_task(bind=True, name="curation.generation.diagnose")
def diagnose_task(self, job_id: int) -> str | None:
    return _status(diagnose_job_run(job_id=job_id, worker=self.request.hostname or "worker"))
