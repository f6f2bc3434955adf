"""Tasks through a real Redis and a real Celery worker process."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from curation.models import Job, Problem
from tests.polling import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_an_import_confirmed_in_the_browser_runs_on_the_worker(live_worker, client_for, lead):
    client = client_for(lead)
    data = "\n".join(
        json.dumps({"id": f"rt-{i}", "question": f"q{i}", "answer": i}) for i in range(40)
    ).encode()
    preview_url = client.post(
        reverse("curation-problem-import"),
        {"file": SimpleUploadedFile("roundtrip.jsonl", data), "benchmark": "Round trip"},
    )["Location"]
    client.post(preview_url, {"benchmark": "Round trip", "confirm": "1"})
    job = Job.objects.get()
    assert job.task_id  # sent on commit, id stored for revoke

    job = wait_for(
        Job.objects.exclude(status__in=Job.ACTIVE).filter(pk=job.pk).first,
        what="the import job to finish",
        timeout=30,
    )
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.worker == live_worker.worker_hostname
    assert (job.progress_done, job.progress_total) == (40, 40)
    assert Problem.objects.filter(benchmark__name="Round trip").count() == 40


def test_a_redelivered_import_message_does_the_work_once(live_worker, lead, tmp_path):
    from curation.services.problem_uploads import problem_upload_save

    token = problem_upload_save(
        name="twice.jsonl", chunks=[b'{"id": "t1", "question": "q", "answer": 1}\n']
    )
    job = Job.objects.create(
        kind=Job.Kind.IMPORT_PROBLEMS, queue="default", params={"token": token}, created_by=lead
    )
    results = [
        live_worker.send_task("curation.problems_import", args=[job.pk], queue="default")
        for _ in range(2)
    ]
    statuses = sorted(str(r.get(timeout=30)) for r in results)
    assert statuses == ["None", "succeeded"]  # the second delivery found the job taken
    job.refresh_from_db()
    assert job.attempts == 1
    assert Problem.objects.filter(external_id="t1").count() == 1


def test_the_reaper_task_runs_on_the_worker(live_worker, settings):
    stale_at = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S + 30)
    job = Job.objects.create(
        kind=Job.Kind.IMPORT_PROBLEMS,
        queue="default",
        status=Job.Status.RUNNING,
        heartbeat_at=stale_at,
        attempts=settings.JOB_MAX_ATTEMPTS,
    )
    reaped = live_worker.send_task("curation.jobs_reap", queue="default").get(timeout=30)
    assert reaped == {"requeued": 0, "failed": 1}
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
