"""Generation through a real Redis and real Celery worker processes, including a worker that
is killed in the middle of a job."""

from __future__ import annotations

import os
import signal
import time

import pytest

from curation.models import Job, ModelEndpoint, Trajectory
from curation.services.generation import hint_insert, trajectories_generate
from curation.services.jobs import jobs_reap
from tests.conftest import start_worker, stop_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout=60.0, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def job_status(job) -> str:
    return Job.objects.get(pk=job.pk).status


def test_a_hint_branch_is_generated_by_the_gpu_worker(live_worker, problem, tiny_model_path):
    reasoner = ModelEndpoint.objects.create(
        name="tiny", backend="transformers", model=str(tiny_model_path),
        sampling={"temperature": 0.0, "max_new_tokens": 60}, extra={"device": "cpu"},
    )  # fmt: skip
    job = trajectories_generate(problems=[problem], endpoint=reasoner)
    assert wait_for(lambda: job_status(job) == "succeeded", 90), Job.objects.get(pk=job.pk).error
    parent = Trajectory.objects.get(job=job)
    hint = hint_insert(trajectory=parent, step_index=0, text="Let me write the model in Pyomo.")
    assert wait_for(lambda: job_status(hint.job) == "succeeded", 90), hint.job.error
    hint.refresh_from_db()
    assert hint.branch.parent == parent and hint.branch.n_hint_tokens > 0
    assert Job.objects.get(pk=hint.job_id).worker == live_worker.worker_hostname


def test_a_killed_worker_leaves_no_partial_trajectory_and_the_job_resumes_once(
    live_worker, test_database_url, problem, tiny_model_path, settings
):
    slow = ModelEndpoint.objects.create(
        name="slow", backend="scripted", model=str(tiny_model_path), concurrency=1,
        extra={"completions": ["The answer is \\boxed{4100}."] * 8, "latency_s": 1.0},
    )  # fmt: skip
    # The shared worker stops taking gpu work, so only the worker we kill gets this job.
    live_worker.control.cancel_consumer("gpu", destination=[live_worker.worker_hostname])
    try:
        first, _ = start_worker(test_database_url, JOB_HEARTBEAT_S="0.5")
        job = trajectories_generate(problems=[problem], endpoint=slow, samples=4)
        assert wait_for(lambda: Trajectory.objects.filter(job=job).exists(), 60)
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool children, mid-job
        first.wait()
        saved = list(Trajectory.objects.filter(job=job))
        assert 1 <= len(saved) < 4
        assert all(t.steps and t.finish_reason == "eos" for t in saved)  # whole rows only

        second, _ = start_worker(test_database_url)
        try:
            # Beat's reaper notices the silent job and puts it back in the queue.
            settings.JOB_STALE_AFTER_S = 2
            assert wait_for(lambda: jobs_reap()["requeued"] == 1, 30)
            assert wait_for(lambda: job_status(job) == "succeeded", 90)
        finally:
            stop_worker(second)
        job.refresh_from_db()
        indexes = sorted(Trajectory.objects.filter(job=job).values_list("job_index", flat=True))
        assert indexes == [0, 1, 2, 3]  # resumed where it was, nothing duplicated
        assert job.attempts == 2
    finally:
        live_worker.control.add_consumer("gpu", destination=[live_worker.worker_hostname])
