"""The life of a background job: create (then enqueue), claim, heartbeat, finish, reap."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Self

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from calm_studio.queues import Queue

from ..models import Job
from ..roles import Role, has_role

# The task that runs each kind of job; every task takes the job id as its only argument.
TASK_FOR_KIND = {
    Job.Kind.IMPORT_PROBLEMS: "curation.problems_import",
    Job.Kind.GENERATE: "curation.generation.generate",
    Job.Kind.CONTINUE: "curation.generation.continue",
    Job.Kind.DIAGNOSE: "curation.generation.diagnose",
    Job.Kind.SFT: "training.run",
    Job.Kind.GRPO: "training.run",
    Job.Kind.EVALUATE: "training.run",
    Job.Kind.SERVE_CHECKPOINT: "training.serve_checkpoint",
}


def job_send(job: Job) -> str:
    """Send the job's task to its queue; returns the Celery task id."""
    from calm_studio.celery import app

    return app.send_task(TASK_FOR_KIND[job.kind], args=[job.pk], queue=job.queue).id


class JobLimitReached(ValueError):
    """A reviewer already has as many gpu jobs waiting or running as they may."""


def _gpu_cap_check(by) -> None:
    """Refuse a reviewer's gpu job beyond ``GPU_JOBS_PER_REVIEWER`` queued or running ones.

    One reviewer could otherwise fill the gpu queue (hint after hint) ahead of everyone else.
    Leads and admins, who launch batches and training, and the system (``by`` None) are not
    capped. Called inside the creating transaction, with the user's row locked (PostgreSQL):
    two requests of one reviewer at once cannot both take the last place.
    """
    cap = settings.GPU_JOBS_PER_REVIEWER
    if by is None or not cap or has_role(by, Role.LEAD):
        return
    get_user_model().objects.select_for_update().filter(pk=by.pk).values("pk").first()
    active = Job.objects.filter(queue=Queue.GPU, created_by=by, status__in=Job.ACTIVE).count()
    if active >= cap:
        raise JobLimitReached(
            f"you have {active} jobs queued or running on the GPU, at most {cap} at once "
            "(GPU_JOBS_PER_REVIEWER); wait for one to finish or cancel one on the Jobs page"
        )


def job_create(*, kind: str, queue: str, params: dict, by=None, enqueue: bool = True) -> Job:
    """Create the job row and, once it is committed, send its task.

    Sending on commit means a worker can never receive an id whose row it cannot see yet.
    ``enqueue=False`` leaves the job for the caller to run in-process (management commands).
    A reviewer's gpu jobs are capped (``JobLimitReached``).
    """
    with transaction.atomic():
        if queue == Queue.GPU:
            _gpu_cap_check(by)
        job = Job.objects.create(kind=kind, queue=queue, params=params, created_by=by)
        if enqueue:

            def send() -> None:
                Job.objects.filter(pk=job.pk).update(task_id=job_send(job))

            transaction.on_commit(send)
    return job


def job_retry(*, job: Job, by=None) -> Job:
    """A new job with the same work as a failed or cancelled one (the old row stays)."""
    if job.is_active:
        raise ValueError("the job is still running")
    retried = job_create(kind=job.kind, queue=job.queue, params=job.params, by=by)
    if job.kind == Job.Kind.CONTINUE:
        from ..models import Hint

        Hint.objects.filter(pk=job.params.get("hint_id"), branch=None).update(job=retried)
    return retried


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


def jobs_reap(*, now=None) -> dict[str, int]:
    """Deal with running jobs whose heartbeat stopped (their worker died): put them back in
    the queue while they have attempts left, so the work resumes where it was (every job
    skips what it already stored), else fail them. Returns how many of each."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    silent = Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=stale)
    requeued = 0
    for job in silent.filter(attempts__lt=settings.JOB_MAX_ATTEMPTS):
        # Conditional: a worker that wakes up and heartbeats meanwhile keeps its job.
        if Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, heartbeat_at__lt=stale).update(
            status=Job.Status.QUEUED, worker="", heartbeat_at=None
        ):
            requeued += 1
            transaction.on_commit(
                lambda job=job: Job.objects.filter(pk=job.pk).update(task_id=job_send(job))
            )
    failed = silent.filter(attempts__gte=settings.JOB_MAX_ATTEMPTS).update(
        status=Job.Status.FAILED,
        error=(
            f"No heartbeat for {settings.JOB_STALE_AFTER_S:.0f} s after "
            f"{settings.JOB_MAX_ATTEMPTS} attempts: the workers stopped or died."
        ),
        finished_at=now,
    )
    return {"requeued": requeued, "failed": failed}


class Heartbeat:
    """Beat from a background thread while a long blocking call runs: ``beat()`` every
    ``interval`` seconds (``JOB_HEARTBEAT_S``), until the ``with`` block ends. The one heartbeat
    thread: a job's (``job_heartbeating``) and a batch's claimed items' use it.

    ``beat`` returns False when what it keeps alive is no longer running (cancelled by a
    person, or reaped): ``cancelled`` then turns True, so loops can stop early. The thread
    closes its own database connection when it stops.
    """

    def __init__(
        self,
        beat: Callable[[], bool | None],
        *,
        interval: float | None = None,
        name: str = "heartbeat",
    ) -> None:
        import threading

        self.beat = beat
        self.interval = interval or settings.JOB_HEARTBEAT_S
        self.cancelled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self._stop.wait(self.interval):
                if self.beat() is False:
                    self.cancelled = True
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)


class job_heartbeating(Heartbeat):  # a context manager that reads like the services around it
    """Heartbeat a job, with its progress, while a long blocking call runs.

    ``with job_heartbeating(job_id) as beat: ...``; ``beat.progress(done, total)`` is sent with
    the next beat; ``beat.cancelled`` turns True when the row stops being RUNNING.
    """

    def __init__(self, job_id: int, interval: float | None = None) -> None:
        self.job_id = job_id
        self.done: int | None = None
        self.total: int | None = None
        super().__init__(self._beat_job, interval=interval, name=f"heartbeat-{job_id}")

    def progress(self, done: int, total: int | None = None) -> None:
        self.done, self.total = done, total

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        # The last progress is written now, not with a next beat that never comes: a job that
        # ends between two beats would otherwise keep its first count ("0 / 1") once finished.
        if self.done is not None:
            job_heartbeat(job_id=self.job_id, done=self.done, total=self.total)

    def _beat_job(self) -> bool:
        return job_heartbeat(job_id=self.job_id, done=self.done, total=self.total)
