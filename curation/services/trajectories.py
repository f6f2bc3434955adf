"""Generating trajectories: the job that samples a problem's first attempts, and the one
conversion of what the engine produced into a Trajectory row (judged against the problem's
current answer), shared by generation, continuation, batches and evaluation.

The web side creates a job row and a task id goes to the ``gpu`` queue; the worker side claims
the row, runs the engine (which knows nothing of Django), and writes each result in one
transaction. Every write is keyed (job, index), so a rerun after a crash completes what is
missing and duplicates nothing.
"""

from __future__ import annotations

import itertools
import logging
import time

from django.conf import settings
from django.db import transaction

from calm_studio.queues import Queue

from .. import engine
from ..models import Job, ModelEndpoint, Problem, Trajectory
from .endpoints import backend_for, config_dict, rollout_config
from .jobs import job_claim, job_create, job_fail, job_finish, job_heartbeating
from .rejudge import problem_answer_current

log = logging.getLogger(__name__)


class GenerationError(ValueError):
    """A request that cannot be run as asked (no reasoner, unknown step, ...)."""


def trajectory_from_rollout(
    rollout,
    *,
    problem: Problem,
    rule: str | None = None,
    tolerance: float | None = None,
    current_answer: bool = True,
    **fields,
) -> Trajectory:
    """An unsaved Trajectory holding everything the engine produced, its answer judged with
    ``rule``/``tolerance`` (default: the CALM_ANSWER_* settings; a batch passes its own) against
    the problem's current answer, read again here (``current_answer``; an evaluation judges
    against the answers of its own problems file and passes False)."""
    if current_answer:
        problem = problem_answer_current(problem)
    counts = rollout.counts
    answer = rollout.final_answer
    return Trajectory(
        problem=problem,
        prompt_tokens=engine.TaggedTokens.prompt(rollout.prompt_ids).to_bytes(),
        completion_tokens=rollout.completion.to_bytes(),
        text=rollout.text,
        steps=[step.to_dict() for step in rollout.steps],
        finish_reason=rollout.finish_reason,
        final_answer=answer.text if answer else "",
        final_value=answer.value if answer else None,
        answer_source=answer.source if answer else "",
        sandbox_objective=rollout.sandbox_objective,
        warnings=list(rollout.warnings),
        is_correct=engine.judge(
            answer,
            problem.answer,
            answer_status=problem.answer_status,
            rule=rule or settings.CALM_ANSWER_RULE,
            tolerance=settings.CALM_ANSWER_TOLERANCE if tolerance is None else tolerance,
        ),
        n_prompt_tokens=len(rollout.prompt_ids),
        n_model_tokens=counts["model"],
        n_interpreter_tokens=counts["interpreter"],
        n_hint_tokens=counts["hint"],
        n_code_calls=counts["code_calls"],
        n_failed_code_calls=counts["failed_code_calls"],
        wall_ms=int(rollout.wall_ms),
        **fields,
    )


class LivePreview:
    """Writes what a running rollout has produced so far into ``Job.live`` (at most once a
    second), so the job page can show the branch growing. Only a preview: the trajectory row
    is still written once, whole, at the end."""

    TAIL_CHARS = 6000

    def __init__(self, job_id: int, offset: int = 0, interval_s: float = 1.0) -> None:
        self.job_id = job_id
        self.offset = offset  # index of the first item in this job's numbering
        self.interval_s = interval_s
        self._last = 0.0

    def __call__(self, progress: list) -> None:
        now = time.monotonic()
        if now - self._last < self.interval_s and not all(p.finished for p in progress):
            return
        self._last = now
        items = [
            {"index": self.offset + p.index, "text": p.text[-self.TAIL_CHARS :], "tokens": p.tokens,
             "code_calls": p.code_calls, "finished": p.finished, "chars": len(p.text)}
            for p in progress
        ]  # fmt: skip
        Job.objects.filter(pk=self.job_id, status=Job.Status.RUNNING).update(live={"items": items})


def trajectories_generate(
    *,
    problems: list[Problem],
    endpoint: ModelEndpoint,
    samples: int = 1,
    config: dict | None = None,
    by=None,
    enqueue: bool = True,
) -> Job:
    """Create a generation job for ``samples`` trajectories per problem (queued on ``gpu``)."""
    if not endpoint.can_reason:
        raise GenerationError(f"{endpoint} is not a Reasoner endpoint")
    if not problems:
        raise GenerationError("no problems to generate for")
    params = {
        "problem_ids": [p.pk for p in problems],
        "endpoint_id": endpoint.pk,
        "samples": samples,
        "config": config or {},
    }
    return job_create(
        kind=Job.Kind.GENERATE,
        queue=Queue.GPU,
        params=params,
        by=by,
        enqueue=enqueue,
    )


def generate_job_run(*, job_id: int, worker: str) -> Job | None:
    """Worker side of a generation job; returns None when the job was not ours to run."""
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        return None
    try:
        params = job.params
        endpoint = ModelEndpoint.objects.get(pk=params["endpoint_id"])
        problems = Problem.objects.in_bulk(params["problem_ids"])
        work = [
            (index, problems[pid])
            for index, (pid, _) in enumerate(
                itertools.product(params["problem_ids"], range(params["samples"]))
            )
        ]
        done = set(
            Trajectory.objects.filter(job=job).values_list("job_index", flat=True)
        )  # a rerun after a crash resumes here
        todo = [(i, p) for i, p in work if i not in done]
        backend = backend_for(endpoint)
        config = rollout_config(endpoint, params.get("config"))
        batch = max(1, int(params.get("batch_size") or endpoint.concurrency or 1))
        errors: list[str] = []
        with job_heartbeating(job.pk) as beat:
            beat.progress(len(done), len(work))
            for start in range(0, len(todo), batch):
                if beat.cancelled:
                    return Job.objects.get(pk=job.pk)
                chunk = todo[start : start + batch]
                rollouts = engine.rollout_many(
                    backend,
                    [p.question for _, p in chunk],
                    config,
                    on_update=LivePreview(job.pk, offset=chunk[0][0]),
                )
                for (index, problem), rollout in zip(chunk, rollouts, strict=True):
                    if rollout.error:
                        # The endpoint failed (after its own retries), or the sandbox could not
                        # run code (rollout.error starts "infrastructure:"): not a model
                        # result, so nothing is stored; a retry generates what is missing.
                        errors.append(f"{problem.external_id}: {rollout.error}")
                        continue
                    _save_generated(job, index, problem, endpoint, rollout, config)
                beat.progress(len(done) + start + len(chunk), len(work))
        ids = list(
            Trajectory.objects.filter(job=job).order_by("job_index").values_list("pk", flat=True)
        )
        if errors:
            summary = f"{len(errors)} of {len(work)} trajectories failed: " + "; ".join(errors)
            job_fail(job_id=job.pk, error=summary)
        else:
            job_finish(job_id=job.pk, result={"trajectory_ids": ids})
    except Exception as exc:
        log.exception("generation job %s failed", job_id)
        job_fail(job_id=job.pk, error=f"{type(exc).__name__}: {exc}")
    return Job.objects.get(pk=job.pk)


def _save_generated(job, index, problem, endpoint, rollout, config) -> Trajectory:
    with transaction.atomic():
        existing = Trajectory.objects.filter(job=job, job_index=index).first()
        if existing:
            return existing
        trajectory = trajectory_from_rollout(
            rollout,
            problem=problem,
            endpoint=endpoint,
            source=Trajectory.Source.GENERATED,
            config=config_dict(config),
            job=job,
            job_index=index,
            created_by=job.created_by,
        )
        trajectory.save()
        return trajectory


def branch_source(parent: Trajectory) -> dict:
    """What ``engine.branch_rollout`` needs of a stored trajectory."""
    return {
        "prompt_ids": engine.TaggedTokens.from_bytes(bytes(parent.prompt_tokens)).ids,
        "completion": engine.TaggedTokens.from_bytes(bytes(parent.completion_tokens)),
        "steps": [engine.Step.from_dict(step) for step in parent.steps],
    }
