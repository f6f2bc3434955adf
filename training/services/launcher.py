"""The ``gpu`` worker's side of a run: write its inputs, start ``python -m training.<kind>``
as a subprocess, read its metrics file and log into the database while it runs, heartbeat the
job, turn a cancel into SIGTERM, and record how it ended.

The worker process itself never imports torch: the GPU memory belongs to the subprocess and is
gone when it exits. If the worker dies, the kernel sends the subprocess SIGTERM (it stops with
a checkpoint); the reaper requeues the job and the next attempt resumes from that checkpoint.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from curation.models import Job, Problem
from curation.services.jobs import job_claim, job_fail, job_finish, job_heartbeat

from ..models import TrainingRun
from ..scripts.runtime import last_checkpoint
from .configs import command_for, config_yaml
from .evaluations import evaluation_import
from .events import MetricsTail, events_ingest, log_tail
from .runs import checkpoint_register

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def _die_with_worker() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM this process when the worker that started it dies, so an orphaned run
    checkpoints and frees its GPU instead of training on, unwatched."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def run_job_execute(*, job_id: int, worker: str) -> Job | None:
    """Claim the run's job and run it to the end; None when the job is not ours to run."""
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        return None
    run = TrainingRun.objects.select_related("model", "dataset").filter(job=job).first()
    if run is None:
        job_fail(job_id=job.pk, error="This job has no training run: relaunch from a run page.")
        job.refresh_from_db()
        return job
    try:
        outcome = _attempt(run, job)
    except Exception as exc:
        log.exception("training run %s failed", run.pk)
        job_fail(job_id=job.pk, error=f"{type(exc).__name__}: {exc}")
    else:
        _finish(run, job, outcome)
    job.refresh_from_db()
    return job


def inputs_write(run: TrainingRun) -> Path:
    """The run's ``run.yaml`` (its ``--config``) and, for GRPO and evaluation, its problems
    JSONL (from the frozen ids, so every attempt sees the same set). Returns the config path."""
    root = Path(run.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    if run.kind != TrainingRun.Kind.SFT:
        ids = run.problem_selection.get("problem_ids") or []
        problems = Problem.objects.filter(pk__in=ids).select_related("benchmark").order_by("pk")
        lines = [
            json.dumps({"id": str(p.pk), "benchmark": p.benchmark.name, "question": p.question,
                        "answer": p.answer, "answer_status": p.answer_status,
                        "answer_version": p.answer_version, "external_id": p.external_id},
                       ensure_ascii=False)
            for p in problems
        ]  # fmt: skip
        if not lines:
            raise RuntimeError("none of the run's problems exist any more")
        (root / "problems.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if run.kind == TrainingRun.Kind.EVALUATE:
        # The endpoint as the app uses it (an API key is named by its variable, never stored).
        (root / "endpoint.json").write_text(json.dumps(run.model.spec(), indent=2))
    path = root / "run.yaml"
    header = f"# CALM Studio run #{run.pk} ({run.kind}), preset {run.preset}\n"
    path.write_text(header + config_yaml(run.config), encoding="utf-8")
    return path


def _attempt(run: TrainingRun, job: Job) -> dict:
    config_path = inputs_write(run)
    root = Path(run.output_dir)
    for earlier in range(1, job.attempts):
        # A dead worker's run went on alone until it checkpointed: keep what it reported then.
        replay = [e for e in MetricsTail(root / f"metrics-{earlier}.jsonl").read()
                  if e.get("event") != "done"]  # fmt: skip
        events_ingest(run, replay)
    resume = last_checkpoint(root) if run.is_training and job.attempts > 1 else None
    metrics_path = root / f"metrics-{job.attempts}.jsonl"
    log_path = root / f"attempt-{job.attempts}.log"
    command = command_for(
        run.kind, config_path, metrics_path=metrics_path, resume=resume,
        accelerate_config=run.accelerate_config, num_processes=run.num_processes,
    )  # fmt: skip
    run.command, run.outcome, run.exit_code = command, "", None
    run.save(update_fields=["command", "outcome", "exit_code"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("CALM_METRICS_FILE", None)
    with log_path.open("ab") as out:
        if resume:
            out.write(f"[calm-studio] attempt {job.attempts}: resuming from {resume}\n".encode())
        proc = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_worker,
        )  # fmt: skip
    return _supervise(run, job, proc, MetricsTail(metrics_path), log_path)


def _supervise(run: TrainingRun, job: Job, proc: subprocess.Popen, tail: MetricsTail, log_path):
    poll = settings.TRAINING_POLL_S
    last_beat = last_log_size = -1.0
    terminated_at: float | None = None
    done = None
    while True:
        exited = proc.poll() is not None
        done = events_ingest(run, tail.read()) or done
        size = log_path.stat().st_size if log_path.exists() else 0
        if size != last_log_size:
            last_log_size = size
            run.log_tail = log_tail(log_path, lines=settings.TRAINING_LOG_TAIL_LINES)
            run.save(update_fields=["log_tail"])
        if exited:
            break
        now = time.monotonic()
        if now - last_beat >= settings.JOB_HEARTBEAT_S:
            last_beat = now
            job_heartbeat(job_id=job.pk, done=run.step, total=run.max_steps)
        wanted = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).exists()
        if not wanted and terminated_at is None:
            # Cancelled (or reaped): SIGTERM the whole group, every rank of a multi-GPU run.
            log.info("run %s cancelled: SIGTERM to pid %s", run.pk, proc.pid)
            _signal_group(proc, signal.SIGTERM)
            terminated_at = now
        elif terminated_at is not None and now - terminated_at > settings.TRAINING_CANCEL_GRACE_S:
            log.warning("run %s did not stop in time after SIGTERM: SIGKILL", run.pk)
            _signal_group(proc, signal.SIGKILL)
            terminated_at = float("inf")
        time.sleep(poll)
    run.exit_code = proc.returncode
    run.save(update_fields=["exit_code"])
    return {"exit_code": proc.returncode, "done": done}


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _finish(run: TrainingRun, job: Job, outcome: dict) -> None:
    done = outcome["done"] or {}
    status = done.get("status")
    if status == "completed" and outcome["exit_code"] == 0:
        result = {"outcome": "completed", "checkpoint": run.checkpoint, "step": run.step}
        if run.kind == TrainingRun.Kind.EVALUATE:
            result["scores"] = evaluation_import(run)
        else:
            result["endpoint_id"] = checkpoint_register(run=run, checkpoint=run.output_dir).pk
        job_finish(job_id=job.pk, result=result)
        return
    if status == "cancelled" and outcome["exit_code"] == 0:
        if (
            run.kind == TrainingRun.Kind.EVALUATE
            and (Path(run.output_dir) / "results.json").exists()
        ):
            evaluation_import(run)  # partial results are still results
        # Stopped by a cancel from the app: the job row already says so. Stopped by anything
        # else (a signal from outside): fail it, so the reaper does not think it still runs.
        Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
            status=Job.Status.FAILED,
            error="The run was stopped by a signal from outside the app (it kept a checkpoint).",
            finished_at=timezone.now(),
        )
        return
    error = done.get("error") or (
        f"the subprocess exited with code {outcome['exit_code']} without reporting an error"
        if status is None
        else f"the run ended {status} with exit code {outcome['exit_code']}"
    )
    if status is None and run.outcome != TrainingRun.Outcome.FAILED:
        run.outcome = TrainingRun.Outcome.FAILED
        run.save(update_fields=["outcome"])
    tail = "\n".join(run.log_tail.splitlines()[-15:])
    job_fail(job_id=job.pk, error=f"{error}\n\nLast lines of the log:\n{tail}")
