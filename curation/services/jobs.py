"""The life of a background job: create (then enqueue), claim, heartbeat, finish, reap."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ..models import Job

Enqueue = Callable[[Job], str]


def job_create(*, kind: str, queue: str, params: dict, by=None, enqueue: Enqueue) -> Job:
    """Create the job row, then enqueue its task once the row is committed.

    ``enqueue(job)`` sends the Celery message and returns the task id; it runs on commit so a
    worker can never receive an id whose row it cannot see yet.
    """
    with transaction.atomic():
        job = Job.objects.create(kind=kind, queue=queue, params=params, created_by=by)

        def send() -> None:
            task_id = enqueue(job)
            Job.objects.filter(pk=job.pk).update(task_id=task_id)

        transaction.on_commit(send)
    return job


def job_claim(*, job_id: int, worker: str) -> Job | None:
    """Mark a job running for this worker, or return None if it is not ours to run.

    One conditional UPDATE decides the race between two deliveries of the same message: only
    the one whose UPDATE matches a row proceeds. A job still "running" with a stale heartbeat
    was orphaned by a dead worker (the broker redelivered it), so it may be claimed again.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    claimable = Q(status=Job.Status.QUEUED) | Q(status=Job.Status.RUNNING, heartbeat_at__lt=stale)
    job = Job.objects.filter(pk=job_id).filter(claimable).first()
    if job is None:
        return None
    claimed = (
        Job.objects.filter(pk=job_id, status=job.status, attempts=job.attempts)
        .filter(claimable)
        .update(
            status=Job.Status.RUNNING,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            attempts=job.attempts + 1,
            error="",
        )
    )
    if not claimed:
        return None
    job.refresh_from_db()
    return job


def job_heartbeat(*, job_id: int, done: int | None = None, total: int | None = None) -> bool:
    """Record that the job is alive (and its progress). False if it was cancelled or reaped."""
    fields: dict = {"heartbeat_at": timezone.now()}
    if done is not None:
        fields["progress_done"] = done
    if total is not None:
        fields["progress_total"] = total
    return bool(Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(**fields))


def job_finish(*, job_id: int, result: dict) -> bool:
    return bool(
        Job.objects.filter(pk=job_id, status=Job.Status.RUNNING).update(
            status=Job.Status.SUCCEEDED, result=result, finished_at=timezone.now()
        )
    )


def job_fail(*, job_id: int, error: str) -> bool:
    return bool(
        Job.objects.filter(pk=job_id, status__in=Job.ACTIVE).update(
            status=Job.Status.FAILED, error=error[:10_000], finished_at=timezone.now()
        )
    )


def job_cancel(*, job_id: int) -> bool:
    return bool(
        Job.objects.filter(pk=job_id, status__in=Job.ACTIVE).update(
            status=Job.Status.CANCELLED, finished_at=timezone.now()
        )
    )


def jobs_reap(*, now=None) -> int:
    """Fail running jobs whose heartbeat stopped. Returns how many were failed."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    return Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=stale).update(
        status=Job.Status.FAILED,
        error=f"No heartbeat for {settings.JOB_STALE_AFTER_S:.0f} s: the worker stopped or died.",
        finished_at=now,
    )
