"""Celery tasks of the curation app: each takes ids and calls one service."""

from __future__ import annotations

from celery import shared_task

from ..services.jobs import jobs_reap
from ..services.problem_uploads import problems_import_job_run


@shared_task(name="curation.jobs_reap")
def jobs_reap_task() -> dict[str, int]:
    """Periodic (beat): requeue (or fail) running jobs whose heartbeat stopped."""
    return jobs_reap()


@shared_task(bind=True, name="curation.problems_import")
def problems_import_task(self, job_id: int) -> str | None:
    """Import an uploaded problem file for a job row created by the browser import."""
    job = problems_import_job_run(job_id=job_id, worker=self.request.hostname or "worker")
    return job.status if job else None
