"""Job rows: one claim wins, heartbeats keep a job alive, the reaper fails silent ones."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from curation.models import Job
from curation.services.jobs import (
    job_cancel,
    job_claim,
    job_create,
    job_finish,
    job_heartbeat,
    job_heartbeating,
    jobs_reap,
)
from tests.polling import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def django_capture_on_commit(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


def new_job(**fields) -> Job:
    return Job.objects.create(kind=Job.Kind.IMPORT_PROBLEMS, queue="default", **fields)


def test_it_lets_only_one_of_two_deliveries_claim_a_job():
    job = new_job()
    first = job_claim(job_id=job.pk, worker="w1")
    second = job_claim(job_id=job.pk, worker="w2")
    assert first is not None and first.worker == "w1" and first.attempts == 1
    assert second is None


def test_it_does_not_claim_a_finished_job():
    job = new_job()
    job_claim(job_id=job.pk, worker="w1")
    job_finish(job_id=job.pk, result={"ok": True})
    assert job_claim(job_id=job.pk, worker="w2") is None


def test_it_reclaims_a_running_job_whose_worker_went_silent(settings):
    job = new_job()
    job_claim(job_id=job.pk, worker="w1")
    silent = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S + 5)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=silent)
    again = job_claim(job_id=job.pk, worker="w2")
    assert again is not None and again.worker == "w2" and again.attempts == 2


def test_it_records_progress_with_the_heartbeat():
    job = new_job()
    job_claim(job_id=job.pk, worker="w1")
    assert job_heartbeat(job_id=job.pk, done=5, total=20)
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total, job.progress_percent) == (5, 20, 25)


@pytest.mark.django_db(transaction=True)  # the heartbeat thread has its own connection
def test_the_heartbeat_thread_keeps_a_job_alive_with_its_progress_until_it_is_cancelled():
    job = new_job()
    job_claim(job_id=job.pk, worker="w1")
    old = timezone.now() - timedelta(hours=1)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=old)
    with job_heartbeating(job.pk, interval=0.05) as beat:
        beat.progress(3, 12)
        wait_for(lambda: Job.objects.get(pk=job.pk).progress_done == 3, what="a beat")
        assert Job.objects.get(pk=job.pk).heartbeat_at > old and not beat.cancelled
        job_cancel(job_id=job.pk)
        wait_for(lambda: beat.cancelled, what="the beat to see the cancel")
    assert not beat._thread.is_alive()


def test_a_heartbeat_tells_a_cancelled_job_to_stop():
    job = new_job()
    job_claim(job_id=job.pk, worker="w1")
    job_cancel(job_id=job.pk)
    assert job_heartbeat(job_id=job.pk) is False


def test_the_reaper_requeues_a_silent_job_that_has_attempts_left(
    settings, monkeypatch, django_capture_on_commit
):
    sent = []
    monkeypatch.setattr("curation.services.jobs.job_send", lambda job: sent.append(job.pk) or "t")
    stale_at = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S + 1)
    stale = new_job(status=Job.Status.RUNNING, heartbeat_at=stale_at, attempts=1)
    alive = new_job(status=Job.Status.RUNNING, heartbeat_at=timezone.now(), attempts=1)
    queued = new_job()
    with django_capture_on_commit():
        assert jobs_reap() == {"requeued": 1, "failed": 0}
    stale.refresh_from_db(), alive.refresh_from_db(), queued.refresh_from_db()
    assert (stale.status, stale.worker, sent) == (Job.Status.QUEUED, "", [stale.pk])
    assert (alive.status, queued.status) == (Job.Status.RUNNING, Job.Status.QUEUED)
    assert job_claim(job_id=stale.pk, worker="w2").attempts == 2


def test_the_reaper_fails_a_silent_job_out_of_attempts(settings):
    stale_at = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S + 1)
    job = new_job(status=Job.Status.RUNNING, heartbeat_at=stale_at, attempts=3)
    assert jobs_reap() == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "No heartbeat" in job.error


@pytest.mark.django_db(transaction=True)
def test_it_enqueues_only_after_the_row_is_committed(monkeypatch):
    seen = []

    def send(job):
        # Runs on commit: the row must be visible from a fresh query (as from a worker).
        seen.append(Job.objects.filter(pk=job.pk).exists())
        return "task-123"

    # Only the send is replaced, to observe its timing; the real send is in test_tasks.py.
    monkeypatch.setattr("curation.services.jobs.job_send", send)
    job = job_create(kind=Job.Kind.IMPORT_PROBLEMS, queue="default", params={})
    assert seen == [True]
    job.refresh_from_db()
    assert job.task_id == "task-123"


def test_a_job_that_ends_between_two_beats_keeps_its_final_progress():
    job = new_job()
    job_claim(job_id=job.pk, worker="w1")
    job_heartbeat(job_id=job.pk, done=0, total=1)  # the one beat the job had time for
    with job_heartbeating(job.pk, interval=3600) as beat:
        beat.progress(1, 1)  # finished before the next beat
    job_finish(job_id=job.pk, result={})
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total, job.progress_percent) == (1, 1, 100)
