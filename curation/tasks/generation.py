"""Celery tasks on the ``gpu`` queue: generate, continue from a hint, diagnose.

Each takes a job id, claims the row and calls one service; a redelivered message finds the
job claimed or finished and does nothing.
"""

from __future__ import annotations

from celery import shared_task

from ..services.batches import batch_advance, batch_send, batches_tick
from ..services.diagnoses import diagnose_job_run
from ..services.hints import continue_job_run
from ..services.trajectories import generate_job_run


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


@shared_task(name="curation.generation.batch_advance")
def batch_advance_task(batch_id: int) -> bool:
    """Move a CALM batch one round forward, and queue the next round while work remains."""
    from ..models import Batch

    more = batch_advance(batch_id=batch_id)
    if more:
        batch_send(Batch.objects.get(pk=batch_id))
    return more


@shared_task(name="curation.batches_tick")
def batches_tick_task() -> int:
    """Periodic (beat): restart the driver of running batches whose worker died."""
    return batches_tick()
