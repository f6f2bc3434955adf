"""Generation through a real Redis and real Celery worker processes, including a worker that
is killed in the middle of a job."""

from __future__ import annotations

import os
import signal

import pytest

from curation.models import Job, ModelEndpoint, Trajectory
from curation.services.hints import hint_insert
from curation.services.jobs import jobs_reap
from curation.services.trajectories import trajectories_generate
from tests.conftest import start_worker, stop_worker
from tests.polling import wait_for

ANSWER = "Done.</think>\nThe answer is \\boxed{4100}."
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def finished(job) -> Job | None:
    """The job once it has left the queue (succeeded, failed or cancelled)."""
    return Job.objects.exclude(status__in=Job.ACTIVE).filter(pk=job.pk).first()


def test_a_hint_branch_is_generated_by_the_gpu_worker(live_worker, problem, tiny_model_path):
    reasoner = ModelEndpoint.objects.create(
        name="tiny", backend="transformers", model=str(tiny_model_path),
        sampling={"temperature": 0.0, "max_new_tokens": 60}, extra={"device": "cpu"},
    )  # fmt: skip
    job = trajectories_generate(problems=[problem], endpoint=reasoner)
    done = wait_for(lambda: finished(job), what="the generation job to finish", timeout=90)
    assert done.status == "succeeded", done.error
    parent = Trajectory.objects.get(job=job)
    hint = hint_insert(trajectory=parent, step_index=0, text="Let me write the model in Pyomo.")
    done = wait_for(lambda: finished(hint.job), what="the hint's job to finish", timeout=90)
    assert done.status == "succeeded", done.error
    hint.refresh_from_db()
    assert hint.branch.parent == parent and hint.branch.n_hint_tokens > 0
    assert Job.objects.get(pk=hint.job_id).worker == live_worker.worker_hostname


def test_a_killed_worker_leaves_no_partial_trajectory_and_the_job_resumes_once(
    live_worker, test_database_url, problem, tiny_model_path, settings
):
    slow = ModelEndpoint.objects.create(
        name="slow", backend="scripted", model=str(tiny_model_path), concurrency=1,
        extra={"completions": [ANSWER] * 8, "latency_s": 1.0},
    )  # fmt: skip
    # The shared worker stops taking gpu work, so only the worker we kill gets this job.
    live_worker.control.cancel_consumer("gpu", destination=[live_worker.worker_hostname])
    try:
        first, _ = start_worker(test_database_url, JOB_HEARTBEAT_S="0.5")
        job = trajectories_generate(problems=[problem], endpoint=slow, samples=4)
        wait_for(Trajectory.objects.filter(job=job).exists, what="a first trajectory", timeout=60)
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool children, mid-job
        first.wait()
        saved = list(Trajectory.objects.filter(job=job))
        assert 1 <= len(saved) < 4
        assert all(t.steps and t.finish_reason == "eos" for t in saved)  # whole rows only

        second, _ = start_worker(test_database_url)
        try:
            # Beat's reaper notices the silent job and puts it back in the queue.
            settings.JOB_STALE_AFTER_S = 2
            wait_for(lambda: jobs_reap()["requeued"] == 1, what="the reaper to requeue", timeout=30)
            done = wait_for(lambda: finished(job), what="the resumed job to finish", timeout=90)
            assert done.status == "succeeded", done.error
        finally:
            stop_worker(second)
        job.refresh_from_db()
        indexes = sorted(Trajectory.objects.filter(job=job).values_list("job_index", flat=True))
        assert indexes == [0, 1, 2, 3]  # resumed where it was, nothing duplicated
        assert job.attempts == 2
    finally:
        live_worker.control.add_consumer("gpu", destination=[live_worker.worker_hostname])


def test_a_batch_whose_worker_is_killed_resumes_where_it_was_and_duplicates_nothing(
    live_worker, test_database_url, problem, tiny_model_path, settings, taxonomy
):
    import json

    from curation.models import Batch, BatchItem
    from curation.services.batches import batch_create, batches_tick

    clean = {"flawless": True, "step": None, "flaw_type": None, "hint": None, "rationale": "ok"}
    reasoner = ModelEndpoint.objects.create(
        name="slow reasoner", backend="scripted", model=str(tiny_model_path),
        extra={"completions": [ANSWER] * 8, "latency_s": 1.0},
    )  # fmt: skip
    intervener = ModelEndpoint.objects.create(
        name="judge", backend="scripted", role="intervener", model=str(tiny_model_path),
        extra={"chat_rules": [["", json.dumps(clean)]]},
    )  # fmt: skip
    live_worker.control.cancel_consumer("gpu", destination=[live_worker.worker_hostname])
    try:
        first, _ = start_worker(test_database_url, JOB_HEARTBEAT_S="0.5")
        batch = batch_create(name="kill me", problems=[problem], reasoner=reasoner,
                             intervener=intervener,
                             # The scripted answer is stated with no solver call (a check's
                             # finding): only the LLM judges here.
                             config={"samples_per_problem": 4, "concurrency": 1,
                                     "intervener_mode": "llm"})  # fmt: skip
        started = BatchItem.objects.filter(batch=batch).exclude(phase="generate")
        wait_for(started.exists, what="an item past generation", timeout=60)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        assert Batch.objects.get(pk=batch.pk).status == "running"
        # The item the dead worker held counts as abandoned after 2 s without a heartbeat.
        second, _ = start_worker(test_database_url, JOB_STALE_AFTER_S="2")
        try:
            settings.JOB_STALE_AFTER_S = 2
            # beat restarts the driver
            wait_for(lambda: batches_tick() == 1, what="a tick to restart the driver", timeout=30)
            wait_for(
                lambda: Batch.objects.get(pk=batch.pk).status == "done",
                what="the batch to finish",
                timeout=90,
            )
        finally:
            stop_worker(second)
        items = BatchItem.objects.filter(batch=batch)
        assert sorted(items.values_list("outcome", flat=True)) == ["candidate"] * 4
        roots = list(items.values_list("root", flat=True))
        assert len(set(roots)) == 4  # one root per item: nothing generated twice was kept
        assert Trajectory.objects.filter(parent=None).count() == 4
    finally:
        live_worker.control.add_consumer("gpu", destination=[live_worker.worker_hostname])
