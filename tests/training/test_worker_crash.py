"""A gpu worker killed in the middle of a training run: the run's subprocess is told (the
kernel's parent-death signal), stops at its step with a checkpoint and frees the machine; the
reaper requeues the job and the next worker resumes from that checkpoint to the end."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from curation.models import Job
from curation.services.jobs import jobs_reap
from tests.conftest import start_worker, stop_worker
from tests.polling import wait_for
from training.models import RunMetric, TrainingRun
from training.scripts.runtime import last_checkpoint
from training.services.runs import run_create

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_killed_worker_s_run_checkpoints_and_resumes_on_the_next_worker(
    live_worker, test_database_url, tiny_endpoint, tiny_dataset, settings
):
    live_worker.control.cancel_consumer("gpu", destination=[live_worker.worker_hostname])
    try:
        first, _ = start_worker(test_database_url, JOB_HEARTBEAT_S="0.5")
        run = run_create(
            kind="sft", name="crash", model=tiny_endpoint, preset="sft_tiny",
            dataset=tiny_dataset, overrides={"max_steps": 400},
        )  # fmt: skip
        wait_for(lambda: TrainingRun.objects.get(pk=run.pk).step >= 3,
                 what="the run to make 3 steps", timeout=90)  # fmt: skip
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool, not the run's session
        first.wait()
        # Nobody watches the run now, but it was told: it saves where it is and exits.
        wait_for(lambda: last_checkpoint(run.output_dir) is not None,
                 what="the told run to write a checkpoint", timeout=60)  # fmt: skip
        stopped_at = int(Path(last_checkpoint(run.output_dir)).name.split("-")[1])
        assert 3 <= stopped_at < 400

        second, _ = start_worker(test_database_url)
        try:
            settings.JOB_STALE_AFTER_S = 2
            wait_for(lambda: jobs_reap()["requeued"] == 1, what="the reaper to requeue the job",
                     timeout=30)  # fmt: skip
            wait_for(
                lambda: Job.objects.get(pk=run.job_id).status in ("succeeded", "failed"),
                what="the resumed run to finish", timeout=240,
            )  # fmt: skip
            job = Job.objects.get(pk=run.job_id)
            assert job.status == "succeeded", job.error
        finally:
            stop_worker(second)
    finally:
        live_worker.control.add_consumer("gpu", destination=[live_worker.worker_hostname])

    run.refresh_from_db()
    assert run.job.attempts == 2 and run.step == 400 and run.outcome == "completed"
    log = (Path(run.output_dir) / "attempt-2.log").read_text()
    assert f"resuming from {run.output_dir}/checkpoint-{stopped_at}" in log
    assert "--resume_from_checkpoint" in run.command
    # Attempt 2 started after the checkpoint: its first reported step is the next one.
    second_attempt = [e for e in (Path(run.output_dir) / "metrics-2.jsonl").read_text().splitlines()
                      if '"event": "step"' in e]  # fmt: skip
    assert f'"step": {stopped_at + 1},' in second_attempt[0]
    assert RunMetric.objects.filter(run=run, event="step").count() == 400
    assert run.endpoint is not None
