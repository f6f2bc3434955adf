"""A reviewer can have at most GPU_JOBS_PER_REVIEWER jobs queued or running on the gpu queue
(hint continuations, diagnoses, retries); the next one is refused with a message and nothing is
created. Leads and admins, who launch batches and training, are not capped."""

from __future__ import annotations

import pytest
from django.urls import reverse

from calm_studio.queues import Queue
from curation.models import Hint, Job, ModelEndpoint
from curation.services.jobs import JobLimitReached, job_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(db):
    return ModelEndpoint.objects.create(name="m", backend="openai", model="m", role="both")


def _gpu_jobs(user, n: int, status=Job.Status.QUEUED) -> None:
    for _ in range(n):
        Job.objects.create(kind=Job.Kind.CONTINUE, queue=Queue.GPU, created_by=user, status=status)


def test_a_reviewer_at_the_cap_cannot_queue_another_hint_continuation(
    settings, client_for, reviewer, make_trajectory, endpoint
):
    settings.GPU_JOBS_PER_REVIEWER = 3
    t = make_trajectory(endpoint=endpoint)
    _gpu_jobs(reviewer, 2)
    _gpu_jobs(reviewer, 5, status=Job.Status.SUCCEEDED)  # finished jobs do not count
    client = client_for(reviewer)
    url = reverse("curation-hint-create", args=[t.pk])
    first = client.post(url, {"step": 1, "text": "Use code."})
    assert first.status_code == 302 and Hint.objects.count() == 1
    refused = client.post(url, {"step": 1, "text": "Check the bound."}, follow=True)
    html = refused.content.decode()
    assert "The hint was not inserted" in html and "3 jobs queued or running" in html
    assert Hint.objects.count() == 1  # the refused hint is not stored either
    assert Job.objects.filter(created_by=reviewer, status=Job.Status.QUEUED).count() == 3


def test_a_reviewer_at_the_cap_cannot_queue_a_diagnosis_or_a_retry(
    settings, client_for, reviewer, make_trajectory, endpoint
):
    settings.GPU_JOBS_PER_REVIEWER = 1
    t = make_trajectory(endpoint=endpoint)
    _gpu_jobs(reviewer, 1, status=Job.Status.RUNNING)
    failed = Job.objects.create(
        kind=Job.Kind.DIAGNOSE, queue=Queue.GPU, created_by=reviewer, status=Job.Status.FAILED,
        params={"trajectory_id": t.pk, "endpoint_id": endpoint.pk},
    )  # fmt: skip
    client = client_for(reviewer)
    response = client.post(reverse("curation-trajectory-diagnose", args=[t.pk]), follow=True)
    assert "1 jobs queued or running" in response.content.decode()
    response = client.post(reverse("curation-job-retry", args=[failed.pk]), follow=True)
    assert "1 jobs queued or running" in response.content.decode()
    assert Job.objects.count() == 2


def test_leads_admins_and_the_system_are_not_capped(settings, lead, admin_user):
    settings.GPU_JOBS_PER_REVIEWER = 1
    for by in (lead, admin_user, None):
        _gpu_jobs(by, 2)
        job_create(kind=Job.Kind.CONTINUE, queue=Queue.GPU, params={}, by=by, enqueue=False)


def test_other_queues_are_not_capped_and_zero_means_no_cap(settings, reviewer):
    settings.GPU_JOBS_PER_REVIEWER = 1
    _gpu_jobs(reviewer, 1)
    job_create(kind=Job.Kind.IMPORT_PROBLEMS, queue=Queue.DEFAULT, params={}, by=reviewer,
               enqueue=False)  # fmt: skip
    with pytest.raises(JobLimitReached, match="at most 1"):
        job_create(kind=Job.Kind.CONTINUE, queue=Queue.GPU, params={}, by=reviewer, enqueue=False)
    settings.GPU_JOBS_PER_REVIEWER = 0
    job_create(kind=Job.Kind.CONTINUE, queue=Queue.GPU, params={}, by=reviewer, enqueue=False)
