"""Hints and the branches they make: a hint goes before a step (or inside its reasoning), and
the Reasoner continues from the stored prefix up to the cut plus the hint, giving a new branch.

Two callers, one path: a person's hint (``hint_insert`` then the ``continue`` job) and the CALM
loop's automated hint (``services.batches``) both check the hint with ``hint_check``, run the
continuation with ``branch_continue`` and store the branch with ``hinted_branch_save``.
"""

from __future__ import annotations

import logging

from django.db import transaction

from calm_studio.queues import Queue

from .. import engine
from ..models import Diagnosis, FlawType, Hint, Job, ModelEndpoint, Trajectory
from .endpoints import backend_for, config_dict, reasoner_default, rollout_config
from .jobs import job_claim, job_create, job_fail, job_finish, job_heartbeating
from .trajectories import GenerationError, LivePreview, branch_source, trajectory_from_rollout

log = logging.getLogger(__name__)


def hint_check(
    *, trajectory: Trajectory, step_index: int | None, text: str, char_offset: int | None = None
) -> str:
    """The one check of a hint, whoever wrote it: some text, a step that exists, a cut inside
    that step's reasoning. Returns the text stripped; raises ``GenerationError``."""
    text = (text or "").strip()
    if not text:
        raise GenerationError("a hint needs some text")
    if step_index is None or not 0 <= step_index < len(trajectory.steps):
        raise GenerationError(f"step {step_index} does not exist")
    reasoning = trajectory.steps[step_index].get("reasoning", "")
    if char_offset is not None and not 0 <= char_offset <= len(reasoning):
        raise GenerationError(f"character {char_offset} is outside step {step_index}'s reasoning")
    return text


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
    text = hint_check(
        trajectory=trajectory, step_index=step_index, text=text, char_offset=char_offset
    )
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


def branch_continue(
    *,
    parent: Trajectory,
    step_index: int,
    char_offset: int | None,
    text: str,
    config: engine.RolloutConfig,
    backend,
    on_update=None,
):
    """Run the Reasoner from ``parent``'s stored prefix up to the cut, plus the hint; returns
    the engine's ``(rollout, branch point)``. Nothing is written."""
    return engine.branch_rollout(
        backend,
        **branch_source(parent),
        step_index=step_index,
        char_offset=char_offset,
        hint_text=text,
        config=config,
        problem=parent.problem.question,
        on_update=on_update,
    )


def hinted_branch_save(
    *,
    parent: Trajectory,
    rollout,
    token_offset: int,
    endpoint: ModelEndpoint,
    config: engine.RolloutConfig,
    hint: Hint | None = None,
    new_hint: dict | None = None,
    answer_rule: dict | None = None,
    job: Job | None = None,
    created_by=None,
) -> tuple[Hint, Trajectory]:
    """The one save of a hinted branch: the child trajectory and its hint, linked, in one
    transaction (a savepoint inside the caller's). Either ``hint`` (a person's, stored before
    its continuation ran; a second delivery that finds it already branched returns that
    branch) or ``new_hint`` (the fields of an automated hint, stored with its branch).
    ``answer_rule``: ``{"rule", "tolerance"}`` (a batch's), else the settings'."""
    if rollout.error:  # the endpoint, or the sandbox (infrastructure): no branch is stored
        if rollout.infrastructure_failed:
            raise engine.SandboxUnavailableError(rollout.error)
        raise engine.BackendError(rollout.error)
    step_index = hint.step_index if hint is not None else new_hint["step_index"]
    with transaction.atomic():
        if hint is not None:
            hint = Hint.objects.select_for_update().get(pk=hint.pk)
            if hint.branch_id:  # another delivery finished first
                return hint, hint.branch
        child = trajectory_from_rollout(
            rollout,
            problem=parent.problem,
            parent=parent,
            branch_step=step_index,
            branch_token=token_offset,
            endpoint=endpoint,
            source=Trajectory.Source.HINTED,
            config=config_dict(config),
            job=job,
            job_index=0 if job is not None else None,
            created_by=created_by,
            **(answer_rule or {}),
        )
        child.save()
        if hint is None:
            hint = Hint.objects.create(
                trajectory=parent, token_offset=token_offset, branch=child, **new_hint
            )
        else:
            hint.branch, hint.token_offset = child, token_offset
            hint.save(update_fields=["branch", "token_offset"])
    return hint, child


def continue_job_run(*, job_id: int, worker: str) -> Job | None:
    """Worker side of a person's hint: prefix up to the cut + hint, then only the suffix."""
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        return None
    try:
        hint = Hint.objects.select_related("trajectory__problem").get(pk=job.params["hint_id"])
        if hint.branch_id is None:
            endpoint = ModelEndpoint.objects.get(pk=job.params["endpoint_id"])
            parent = hint.trajectory
            config = rollout_config(endpoint, parent.config)
            with job_heartbeating(job.pk):
                rollout, point = branch_continue(
                    parent=parent, step_index=hint.step_index, char_offset=hint.char_offset,
                    text=hint.text, config=config, backend=backend_for(endpoint),
                    on_update=LivePreview(job.pk),
                )  # fmt: skip
            hinted_branch_save(
                parent=parent, rollout=rollout, token_offset=point.offset, endpoint=endpoint,
                config=config, hint=hint, job=job, created_by=hint.author_user,
            )  # fmt: skip
            hint.refresh_from_db()
        job_finish(job_id=job.pk, result={"trajectory_id": hint.branch_id})
    except Exception as exc:
        log.exception("continuation job %s failed", job_id)
        job_fail(job_id=job.pk, error=f"{type(exc).__name__}: {exc}")
    return Job.objects.get(pk=job.pk)


def quote_cut(parent: Trajectory, diagnosis) -> tuple[int | None, str]:
    """Where an automated hint goes inside its step: just before the sentence the Intervener
    quoted (keeping the correct part of the step), or, when the quote is not in the step, at
    the step's start, with a note saying so."""
    if not diagnosis.quote:
        return None, ""
    reasoning = parent.steps[diagnosis.step_index].get("reasoning", "")
    at = engine.quote_offset(reasoning, diagnosis.quote)
    if at is None:
        return None, (
            f"the Intervener's quote is not in step {diagnosis.step_index}: the hint goes "
            "before the step"
        )[:300]
    return at, ""
