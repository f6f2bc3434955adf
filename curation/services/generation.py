"""Generating trajectories, continuing them from hints, and diagnosing them.

The web side creates a job row and a task id goes to the ``gpu`` queue; the worker side claims
the row, runs the engine (which knows nothing of Django), and writes each result in one
transaction. Every write is keyed (job, index) or (hint → branch), so a rerun after a crash
completes what is missing and duplicates nothing.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict

from django.conf import settings
from django.db import transaction

from calm_studio import local_model
from calm_studio.queues import Queue

from .. import engine
from ..models import Diagnosis, FlawType, Hint, Job, ModelEndpoint, Problem, Trajectory
from .jobs import job_claim, job_create, job_fail, job_finish, job_heartbeating
from .labels import flaw_label_set
from .rejudge import problem_answer_current

log = logging.getLogger(__name__)
_BACKENDS: OrderedDict[tuple, object] = OrderedDict()
_MAX_CACHED_BACKENDS = 2


class GenerationError(ValueError):
    """A request that cannot be run as asked (no reasoner, unknown step, ...)."""


# --- engine plumbing ---------------------------------------------------------------------------


def backend_for(endpoint: ModelEndpoint):
    """The engine backend of an endpoint, cached per worker process.

    Loading a local model takes seconds to minutes; a GPU worker keeps the last two it used.
    """
    spec = endpoint.spec()
    if endpoint.backend == ModelEndpoint.Backend.OPENAI and local_model.serves(endpoint.base_url):
        # The embedded model's supervisor says how its server died, if it did.
        spec.setdefault("server_status_file", str(local_model.status_path()))
    if endpoint.backend == ModelEndpoint.Backend.SCRIPTED:
        return engine.load_backend(spec)  # stateful replay: never shared between jobs
    key = (endpoint.pk, repr(sorted(spec.items())))
    if key in _BACKENDS:
        _BACKENDS.move_to_end(key)
        return _BACKENDS[key]
    backend = engine.load_backend(spec)
    _BACKENDS[key] = backend
    while len(_BACKENDS) > _MAX_CACHED_BACKENDS:
        _, old = _BACKENDS.popitem(last=False)
        close = getattr(old, "close", None)
        if close:
            close()
    return backend


def endpoint_prompts(endpoint: ModelEndpoint) -> engine.Prompts:
    """The engine's default prompts with the endpoint's overrides; the flaw types' hint
    templates (admin-editable data) under the endpoint's own."""
    prompts = engine.Prompts.from_overrides(endpoint.prompts)
    templates = dict(
        FlawType.objects.filter(active=True).exclude(hint_template="")
        .values_list("code", "hint_template")
    )  # fmt: skip
    prompts.hint_templates = {**templates, **prompts.hint_templates}
    return prompts


def rollout_config(endpoint: ModelEndpoint, overrides: dict | None = None) -> engine.RolloutConfig:
    """Settings defaults < the endpoint's prompts and sampling < a job's or a batch's values."""
    prompts = engine.Prompts.from_overrides(endpoint.prompts)
    values = {
        **settings.CALM_ROLLOUT_DEFAULTS,
        "system_prompt": prompts.system_prompt,
        "worked_example": prompts.worked_example,
        **endpoint.sampling,
        **(overrides or {}),
    }
    known = set(engine.RolloutConfig.__dataclass_fields__)
    return engine.RolloutConfig(**{k: v for k, v in values.items() if k in known})


def intervener_facts(trajectory: Trajectory, *, with_reference: bool | None = None):
    """What the system tells the Intervener about a trajectory: its stated answer, how it
    ended and, while curating (CALM_INTERVENER_SEES_REFERENCE), the reference answer."""
    if with_reference is None:
        with_reference = settings.CALM_INTERVENER_SEES_REFERENCE
    problem = trajectory.problem
    reference = None
    if with_reference:
        reference = (
            "no optimal solution (infeasible or unbounded)"
            if problem.answer is None or problem.answer_status != "value"
            else f"{problem.answer:g}"
        )
    return engine.Facts(
        answer=trajectory.final_answer or None,
        reference=reference,
        correct=trajectory.is_correct if with_reference else None,
        finish_reason=trajectory.finish_reason,
    )


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


# --- generate ----------------------------------------------------------------------------------


def reasoner_default() -> ModelEndpoint | None:
    return (
        ModelEndpoint.objects.filter(active=True, is_default_reasoner=True).first()
        or ModelEndpoint.objects.filter(active=True, role__in=["reasoner", "both"]).first()
    )


def intervener_default() -> ModelEndpoint | None:
    return (
        ModelEndpoint.objects.filter(active=True, is_default_intervener=True).first()
        or ModelEndpoint.objects.filter(active=True, role__in=["intervener", "both"]).first()
    )


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
                        # The endpoint failed (after its own retries): not a model result, so
                        # nothing is stored; a retry of the job generates what is missing.
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


def config_dict(config) -> dict:
    from dataclasses import asdict

    return {k: v for k, v in asdict(config).items() if isinstance(v, int | float | str | bool)}


# --- hints and continuation --------------------------------------------------------------------


def hint_insert(
    *,
    trajectory: Trajectory,
    step_index: int,
    text: str,
    char_offset: int | None = None,
    by_user=None,
    by_endpoint: ModelEndpoint | None = None,
    flaw_type: FlawType | None = None,
    diagnosis: Diagnosis | None = None,
    endpoint: ModelEndpoint | None = None,
    enqueue: bool = True,
) -> Hint:
    """Insert a hint before step ``step_index`` (or inside its reasoning at ``char_offset``)
    and queue the continuation that makes the new branch."""
    text = text.strip()
    if not text:
        raise GenerationError("a hint needs some text")
    if not 0 <= step_index < len(trajectory.steps):
        raise GenerationError(f"step {step_index} does not exist")
    reasoning = trajectory.steps[step_index].get("reasoning", "")
    if char_offset is not None and not 0 <= char_offset <= len(reasoning):
        raise GenerationError(f"character {char_offset} is outside step {step_index}'s reasoning")
    reasoner = endpoint or trajectory.endpoint or reasoner_default()
    if reasoner is None:
        raise GenerationError("no Reasoner endpoint is configured")
    with transaction.atomic():
        hint = Hint.objects.create(
            trajectory=trajectory,
            step_index=step_index,
            char_offset=char_offset,
            text=text,
            flaw_type=flaw_type,
            author_user=by_user,
            author_endpoint=by_endpoint,
            diagnosis=diagnosis,
        )
        job = job_create(
            kind=Job.Kind.CONTINUE,
            queue=Queue.GPU,
            params={"hint_id": hint.pk, "endpoint_id": reasoner.pk},
            by=by_user,
            enqueue=enqueue,
        )
        hint.job = job
        hint.save(update_fields=["job"])
    return hint


def branch_source(parent: Trajectory) -> dict:
    """What ``engine.branch_rollout`` needs of a stored trajectory."""
    return {
        "prompt_ids": engine.TaggedTokens.from_bytes(bytes(parent.prompt_tokens)).ids,
        "completion": engine.TaggedTokens.from_bytes(bytes(parent.completion_tokens)),
        "steps": [engine.Step.from_dict(step) for step in parent.steps],
    }


def continue_job_run(*, job_id: int, worker: str) -> Job | None:
    """Worker side of a continuation: prefix up to the cut + hint, then only the suffix."""
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        return None
    try:
        hint = Hint.objects.select_related("trajectory__problem").get(pk=job.params["hint_id"])
        if hint.branch_id is None:
            _continue(job, hint, ModelEndpoint.objects.get(pk=job.params["endpoint_id"]))
            hint.refresh_from_db()
        job_finish(job_id=job.pk, result={"trajectory_id": hint.branch_id})
    except Exception as exc:
        log.exception("continuation job %s failed", job_id)
        job_fail(job_id=job.pk, error=f"{type(exc).__name__}: {exc}")
    return Job.objects.get(pk=job.pk)


def _continue(job: Job, hint: Hint, endpoint: ModelEndpoint) -> Trajectory:
    parent = hint.trajectory
    backend = backend_for(endpoint)
    config = rollout_config(endpoint, parent.config)
    with job_heartbeating(job.pk):
        rollout, point = engine.branch_rollout(
            backend,
            **branch_source(parent),
            step_index=hint.step_index,
            char_offset=hint.char_offset,
            hint_text=hint.text,
            config=config,
            problem=parent.problem.question,
            on_update=LivePreview(job.pk),
        )
    offset = point.offset
    if rollout.error:
        raise engine.BackendError(rollout.error)
    with transaction.atomic():
        locked = Hint.objects.select_for_update().get(pk=hint.pk)
        if locked.branch_id:  # another delivery finished first
            return locked.branch
        child = trajectory_from_rollout(
            rollout,
            problem=parent.problem,
            parent=parent,
            branch_step=hint.step_index,
            branch_token=offset,
            endpoint=endpoint,
            source=Trajectory.Source.HINTED,
            config=config_dict(config),
            job=job,
            job_index=0,
            created_by=hint.author_user,
        )
        child.save()
        locked.branch = child
        locked.token_offset = offset
        locked.save(update_fields=["branch", "token_offset"])
    return child


# --- diagnosis -----------------------------------------------------------------------------------


def diagnosis_request(
    *, trajectory: Trajectory, endpoint: ModelEndpoint | None = None, by=None, enqueue=True
) -> Job:
    """Queue an Intervener diagnosis of a trajectory."""
    intervener = endpoint or intervener_default()
    if intervener is None or not intervener.can_intervene:
        raise GenerationError("no Intervener endpoint is configured")
    return job_create(
        kind=Job.Kind.DIAGNOSE,
        queue=Queue.GPU,
        params={"trajectory_id": trajectory.pk, "endpoint_id": intervener.pk},
        by=by,
        enqueue=enqueue,
    )


def diagnose_job_run(*, job_id: int, worker: str) -> Job | None:
    """Worker side: ask the Intervener, store its verdict (or its error) and its label."""
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        return None
    try:
        if not Diagnosis.objects.filter(job=job).exists():
            _diagnose(job)
        diagnosis = Diagnosis.objects.get(job=job)
        job_finish(job_id=job.pk, result={"diagnosis_id": diagnosis.pk})
    except Exception as exc:
        log.exception("diagnosis job %s failed", job_id)
        job_fail(job_id=job.pk, error=f"{type(exc).__name__}: {exc}")
    return Job.objects.get(pk=job.pk)


def _diagnose(job: Job) -> Diagnosis:
    trajectory = Trajectory.objects.select_related("problem").get(pk=job.params["trajectory_id"])
    endpoint = ModelEndpoint.objects.get(pk=job.params["endpoint_id"])
    flaw_types = {
        ft.code: ft for ft in FlawType.objects.filter(active=True).select_related("category")
    }
    started = time.monotonic()
    prompts = endpoint_prompts(endpoint)
    with job_heartbeating(job.pk):
        verdict = engine.diagnose(
            backend_for(endpoint),
            problem=trajectory.problem.question,
            steps=[engine.Step.from_dict(step) for step in trajectory.steps],
            taxonomy=[ft.as_engine_dict() for ft in flaw_types.values()],
            facts=intervener_facts(trajectory),
            system_prompt=prompts.intervener_system,
            hint_templates=prompts.hint_templates,
        )
    log.info("diagnosis of %s took %.1f s", trajectory.pk, time.monotonic() - started)
    with transaction.atomic():
        diagnosis = diagnosis_record(
            trajectory=trajectory, endpoint=endpoint, verdict=verdict, flaw_types=flaw_types,
            job=job,
        )  # fmt: skip
    return diagnosis


def diagnosis_record(
    *,
    trajectory: Trajectory,
    endpoint: ModelEndpoint,
    verdict,
    flaw_types: dict,
    job=None,
    reason: str = "",
) -> Diagnosis:
    """Store an Intervener verdict (valid or not: the raw text is always kept) and, when it
    names a flaw, the model's label on that step. Call inside a transaction."""
    flaw_type = flaw_types.get(verdict.flaw_type) if verdict.flaw_type else None
    diagnosis = Diagnosis.objects.create(
        trajectory=trajectory, endpoint=endpoint,
        status=Diagnosis.Status.ERROR if verdict.error else Diagnosis.Status.OK,
        flawless=None if verdict.error else verdict.flawless, step_index=verdict.step,
        flaw_type=flaw_type, hint=verdict.hint or "", rationale=verdict.rationale or "",
        raw=verdict.raw or "", error=verdict.error or "", job=job, quote=verdict.quote or "",
    )  # fmt: skip
    if diagnosis.status == Diagnosis.Status.OK and not verdict.flawless:
        flaw_label_set(
            trajectory=trajectory, step_index=verdict.step, flaw_type=flaw_type,
            by_endpoint=endpoint, note=verdict.rationale or "",
            reason=reason or f"Intervener diagnosis #{diagnosis.pk}",
        )  # fmt: skip
    return diagnosis
