"""The CALM loop over a batch (the lead's queue): generate, diagnose, and while the Intervener
finds a flaw and the cap allows, insert its hint and regenerate from that step. Each phase calls
the one path of its kind: ``trajectories`` (generation), ``diagnoses`` (the Intervener) and
``hints`` (check, continue, save the branch).

Work advances in rounds: ``batch_advance`` claims up to ``concurrency`` items, moves each one
phase forward (all generations of a round go to the endpoint together, so many requests are in
flight), writes each item's step in one transaction, and is queued again while work remains.
Every write is keyed, so a driver killed in the middle loses at most the step in flight, and a
rerun repeats that step once (items whose heartbeat stopped are claimed again).
"""

from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .. import engine
from ..models import (
    Batch,
    BatchItem,
    BatchRound,
    ModelEndpoint,
    Problem,
    Trajectory,
)
from .diagnoses import Intervener
from .endpoints import backend_for, config_dict, rollout_config
from .hints import branch_continue, hint_check, hinted_branch_save, quote_cut
from .jobs import Heartbeat
from .rejudge import batch_answer_rule
from .trajectories import GenerationError, trajectory_from_rollout

log = logging.getLogger(__name__)
# Set only when a batch overrides them; otherwise the endpoint's sampling and the settings'
# rollout defaults apply (a batch of a small local model must not inherit a 16k budget).
ROLLOUT_KEYS = ("max_code_calls", "max_new_tokens")


class BatchError(ValueError):
    pass


# --- creating and steering -------------------------------------------------------------------


def batch_problems(
    *,
    benchmarks: list[str],
    answer_status: str = "",
    sample_size: int | None = None,
    seed=0,
    splits: list[str] | None = None,
) -> list[Problem]:
    """The problem selection of a batch: benchmarks (slugs), a filter, the splits (None or
    empty: every split; the forms default to train), a seeded sample."""
    problems = Problem.objects.filter(benchmark__slug__in=benchmarks).order_by("pk")
    if splits:
        problems = problems.filter(split__in=splits)
    if answer_status:
        problems = problems.filter(answer_status=answer_status)
    chosen = list(problems)
    if sample_size and sample_size < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, sample_size), key=lambda p: p.pk)  # noqa: S311
    return chosen


def batch_create(
    *,
    name: str,
    problems: list[Problem],
    reasoner: ModelEndpoint,
    intervener: ModelEndpoint,
    config: dict | None = None,
    selection: dict | None = None,
    by=None,
    enqueue: bool = True,
) -> Batch:
    """Create a batch with one item per (problem, sample) and start its driver."""
    if not problems:
        raise BatchError("the selection has no problems")
    if not reasoner.can_reason or not intervener.can_intervene:
        raise BatchError("choose a Reasoner and an Intervener endpoint")
    config = {**Batch.DEFAULTS, **(config or {})}
    with transaction.atomic():
        batch = Batch.objects.create(
            name=name, reasoner=reasoner, intervener=intervener, config=config,
            selection=selection or {}, created_by=by,
        )  # fmt: skip
        BatchItem.objects.bulk_create(
            BatchItem(batch=batch, problem=p, sample_index=s)
            for p in problems
            for s in range(int(config["samples_per_problem"]))
        )
        if enqueue:
            transaction.on_commit(lambda: batch_send(batch))
    return batch


def batch_send(batch: Batch) -> None:
    from calm_studio.celery import app

    task = app.send_task("curation.generation.batch_advance", args=[batch.pk], queue="gpu")
    Batch.objects.filter(pk=batch.pk).update(task_id=task.id)


def batch_pause(*, batch: Batch) -> bool:
    """Stop claiming new work; steps in flight finish."""
    return bool(
        Batch.objects.filter(pk=batch.pk, status=Batch.Status.RUNNING).update(
            status=Batch.Status.PAUSED
        )
    )


def batch_resume(*, batch: Batch, enqueue: bool = True) -> bool:
    resumed = Batch.objects.filter(pk=batch.pk, status=Batch.Status.PAUSED).update(
        status=Batch.Status.RUNNING
    )
    if resumed and enqueue:
        transaction.on_commit(lambda: batch_send(batch))
    return bool(resumed)


def batch_cancel(*, batch: Batch) -> bool:
    return bool(
        Batch.objects.filter(
            pk=batch.pk, status__in=[Batch.Status.RUNNING, Batch.Status.PAUSED]
        ).update(status=Batch.Status.CANCELLED, finished_at=timezone.now())
    )


# --- the driver --------------------------------------------------------------------------------


def _claimable(batch: Batch):
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    return BatchItem.objects.filter(batch=batch).filter(
        Q(state=BatchItem.State.WAITING) | Q(state=BatchItem.State.RUNNING, heartbeat_at__lt=stale)
    )


def _claim(batch: Batch, limit: int) -> list[BatchItem]:
    """Take up to ``limit`` items with one conditional UPDATE per item (two drivers never take
    the same item; a RUNNING item whose heartbeat stopped belonged to a dead driver)."""
    claimed = []
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    for item in _claimable(batch).order_by("pk")[: limit * 2]:
        now = timezone.now()
        taken = (
            BatchItem.objects.filter(pk=item.pk)
            .filter(
                Q(state=BatchItem.State.WAITING)
                | Q(state=BatchItem.State.RUNNING, heartbeat_at__lt=stale)
            )
            .update(
                state=BatchItem.State.RUNNING,
                heartbeat_at=now,
                attempts=item.attempts + 1,
                started_at=Coalesce("started_at", Value(now)),
            )
        )
        if taken:
            item.state, item.heartbeat_at, item.attempts = "running", now, item.attempts + 1
            claimed.append(item)
        if len(claimed) >= limit:
            break
    return claimed


def _items_beat(ids: list[int]) -> None:
    """Keeps the claimed items' heartbeats fresh while a long step runs (in a ``Heartbeat``)."""
    BatchItem.objects.filter(pk__in=ids, state=BatchItem.State.RUNNING).update(
        heartbeat_at=timezone.now()
    )


def batch_advance(*, batch_id: int) -> bool:
    """Move up to ``concurrency`` items one phase forward. Returns True while work remains
    (the task queues itself again); marks the batch done when nothing is left."""
    batch = Batch.objects.select_related("reasoner", "intervener").get(pk=batch_id)
    if batch.status != Batch.Status.RUNNING:
        return False
    items = _claim(batch, batch.concurrency)
    if items:
        items = list(
            BatchItem.objects.filter(pk__in=[i.pk for i in items]).select_related(
                "problem", "trajectory", "pending_diagnosis__flaw_type"
            )
        )
        ids = [i.pk for i in items]
        with Heartbeat(lambda: _items_beat(ids), name=f"batch-{batch.pk}-items"):
            for phase, step in (
                (BatchItem.Phase.GENERATE, _generate),
                (BatchItem.Phase.DIAGNOSE, _diagnose),
                (BatchItem.Phase.INTERVENE, _intervene),
            ):
                group = [i for i in items if i.phase == phase]
                if group:
                    try:
                        step(batch, group)
                    except Exception as exc:  # the endpoint is down: retry these later
                        log.exception("batch %s: %s step failed", batch.pk, phase)
                        _fail(group, exc, final=False)
    remaining = (
        _claimable(batch).exists()
        or BatchItem.objects.filter(batch=batch, state=BatchItem.State.RUNNING).exists()
    )
    if not remaining:
        Batch.objects.filter(pk=batch.pk, status=Batch.Status.RUNNING).update(
            status=Batch.Status.DONE, finished_at=timezone.now()
        )
    return remaining and bool(items)


def rollout_failure(rollout) -> Exception:
    """Why a rollout gave no trajectory: the sandbox could not run code (infrastructure) or
    the endpoint failed; never a model result."""
    if rollout.infrastructure_failed:
        return engine.SandboxUnavailableError(rollout.error)
    return engine.BackendError(rollout.error)


def _fail(items: list[BatchItem], exc: Exception, *, final: bool) -> None:
    if isinstance(exc, engine.SandboxUnavailableError):
        kind = "infrastructure"  # the sandbox failed, not the model: shown apart on the batch
    elif isinstance(exc, engine.BackendError):
        kind = "endpoint"
    else:
        kind = type(exc).__name__
    for item in items:
        # A transient failure puts the item back for a later round, up to the attempts cap.
        give_up = final or item.attempts >= settings.JOB_MAX_ATTEMPTS
        BatchItem.objects.filter(pk=item.pk).update(
            state=BatchItem.State.FAILED if give_up else BatchItem.State.WAITING,
            outcome=BatchItem.Outcome.ERROR if give_up else "",
            error=f"{type(exc).__name__}: {exc}"[:5000],
            error_kind=kind,
            finished_at=timezone.now() if give_up else None,
        )


def _config(batch: Batch, endpoint: ModelEndpoint) -> engine.RolloutConfig:
    overrides = {k: batch.config[k] for k in ROLLOUT_KEYS if batch.config.get(k)}
    return rollout_config(endpoint, overrides)


def _rule(batch: Batch) -> dict:
    """The batch's answer rule, as keyword arguments of ``trajectory_from_rollout``."""
    rule, tolerance = batch_answer_rule(batch.config)
    return {"rule": rule, "tolerance": tolerance}


def _generate(batch: Batch, items: list[BatchItem]) -> None:
    backend = backend_for(batch.reasoner)
    config = _config(batch, batch.reasoner)
    rollouts = engine.rollout_many(backend, [i.problem.question for i in items], config)
    for item, rollout in zip(items, rollouts, strict=True):
        if rollout.error:
            _fail([item], rollout_failure(rollout), final=False)
            continue
        with transaction.atomic():
            trajectory = trajectory_from_rollout(
                rollout, problem=item.problem, endpoint=batch.reasoner,
                source=Trajectory.Source.GENERATED, config=config_dict(config), **_rule(batch),
            )  # fmt: skip
            trajectory.save()
            BatchItem.objects.filter(pk=item.pk).update(
                root=trajectory, trajectory=trajectory, phase=BatchItem.Phase.DIAGNOSE,
                state=BatchItem.State.WAITING,
            )  # fmt: skip


def _diagnose(batch: Batch, items: list[BatchItem]) -> None:
    with_reference = bool(batch.config.get("intervener_sees_reference",
                                           settings.CALM_INTERVENER_SEES_REFERENCE))  # fmt: skip
    intervener = Intervener(
        batch.intervener, with_reference=with_reference, answer_rule=_rule(batch),
        mode=batch.config.get("intervener_mode"),
    )  # fmt: skip
    workers = 1 if batch.intervener.backend == "transformers" else batch.concurrency
    with ThreadPoolExecutor(max_workers=workers) as pool:
        verdicts = list(pool.map(lambda item: intervener.ask(item.trajectory), items))
    for item, verdict in zip(items, verdicts, strict=True):
        if verdict.error and "no answer after" in verdict.error:
            _fail([item], engine.BackendError(verdict.error), final=False)
            continue
        _record_verdict(batch, item, verdict, intervener)


def _record_verdict(batch, item, verdict, intervener: Intervener) -> None:
    trajectory = item.trajectory
    with transaction.atomic():
        diagnosis = intervener.record(
            trajectory, verdict, reason=f"Intervener diagnosis (batch {batch.pk})"
        )
        update: dict = {"pending_diagnosis": None, "state": BatchItem.State.DONE}
        if verdict.error:
            # A bad answer from the Intervener is a result: recorded, the item ends here.
            update.update(outcome=BatchItem.Outcome.ERROR, error_kind="intervener_output",
                          error=verdict.error, state=BatchItem.State.FAILED)  # fmt: skip
        elif verdict.flawless:
            # Golden candidate only if correct and judged flawless (CALM's rule).
            update["outcome"] = (
                BatchItem.Outcome.CANDIDATE
                if trajectory.is_correct
                else BatchItem.Outcome.WRONG_FLAWLESS
            )
        elif item.rounds >= batch.max_interventions:
            update["outcome"] = BatchItem.Outcome.CAP_REACHED
        else:
            update.update(pending_diagnosis=diagnosis, phase=BatchItem.Phase.INTERVENE,
                          state=BatchItem.State.WAITING)  # fmt: skip
        if update["state"] in (BatchItem.State.DONE, BatchItem.State.FAILED):
            update["finished_at"] = timezone.now()
        BatchItem.objects.filter(pk=item.pk).update(**update)


def _intervene(batch: Batch, items: list[BatchItem]) -> None:
    backend = backend_for(batch.reasoner)
    config = _config(batch, batch.reasoner)
    ready = []
    for item in items:
        diagnosis = item.pending_diagnosis
        try:
            hint_check(trajectory=item.trajectory, step_index=diagnosis.step_index,
                       text=diagnosis.hint)  # fmt: skip
        except GenerationError as exc:  # the Intervener's hint cannot be placed: a result
            _fail([item], exc, final=True)
            continue
        ready.append(item)

    def branch(item: BatchItem):
        parent, diagnosis = item.trajectory, item.pending_diagnosis
        char_offset, note = quote_cut(parent, diagnosis)
        rollout, point = branch_continue(
            parent=parent, step_index=diagnosis.step_index, char_offset=char_offset,
            text=diagnosis.hint.strip(), config=config, backend=backend,
        )  # fmt: skip
        return rollout, point.offset, char_offset, note

    workers = 1 if batch.reasoner.backend == "transformers" else batch.concurrency
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(branch, ready))
    for item, (rollout, offset, char_offset, note) in zip(ready, results, strict=True):
        if rollout.error:
            _fail([item], rollout_failure(rollout), final=False)
            continue
        parent, diagnosis = item.trajectory, item.pending_diagnosis
        with transaction.atomic():
            _, child = hinted_branch_save(
                parent=parent, rollout=rollout, token_offset=offset, endpoint=batch.reasoner,
                config=config, answer_rule=_rule(batch),
                new_hint={
                    "step_index": diagnosis.step_index, "char_offset": char_offset,
                    "cut_note": note, "text": diagnosis.hint.strip(),
                    "flaw_type": diagnosis.flaw_type, "author_endpoint": batch.intervener,
                    "diagnosis": diagnosis,
                },
            )  # fmt: skip
            BatchRound.objects.create(
                item=item, number=item.rounds + 1, diagnosis=diagnosis, before=parent,
                after=child, correct_before=parent.is_correct, correct_after=child.is_correct,
            )  # fmt: skip
            BatchItem.objects.filter(pk=item.pk).update(
                trajectory=child, rounds=item.rounds + 1, pending_diagnosis=None,
                phase=BatchItem.Phase.DIAGNOSE, state=BatchItem.State.WAITING,
            )  # fmt: skip


def batches_tick() -> int:
    """Periodic (beat): restart the driver of running batches whose work stalled (the worker
    that drove them died). Returns how many were restarted."""
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    restarted = 0
    for batch in Batch.objects.filter(status=Batch.Status.RUNNING):
        items = BatchItem.objects.filter(batch=batch)
        busy = items.filter(state=BatchItem.State.RUNNING, heartbeat_at__gte=stale).exists()
        recent = items.filter(updated_at__gte=stale).exists()
        if not busy and not recent and _claimable(batch).exists():
            batch_send(batch)
            restarted += 1
    return restarted


def batch_progress(batch: Batch) -> dict:
    """Counts for the batch page: items by state and outcome, rounds, throughput, ETA."""
    from django.db.models import Count

    items = BatchItem.objects.filter(batch=batch)
    by_state = dict(items.values_list("state").annotate(n=Count("pk")))
    by_outcome = dict(items.exclude(outcome="").values_list("outcome").annotate(n=Count("pk")))
    errors = dict(items.exclude(error_kind="").values_list("error_kind").annotate(n=Count("pk")))
    total = sum(by_state.values())
    timing = _eta(batch, items, total)
    rounds = {}
    for number, before, after in BatchRound.objects.filter(item__batch=batch).values_list(
        "number", "correct_before", "correct_after"
    ):
        row = rounds.setdefault(number, {"round": number, "interventions": 0, "fixed": 0})
        row["interventions"] += 1
        row["fixed"] += int(bool(after) and not before)
    return {
        "total": total,
        "by_state": {s: by_state.get(s, 0) for s in BatchItem.State.values},
        "by_outcome": {o: by_outcome.get(o, 0) for o in BatchItem.Outcome.values},
        "errors": errors,
        "rounds": [rounds[k] for k in sorted(rounds)],
        "percent": round(100 * timing["done"] / total) if total else 0,
        **timing,
    }


def _eta(batch: Batch, items, total: int) -> dict:
    """Time left, from how long the finished items took each (first claim to finish): the
    work left is a mean duration for each queued item and what remains of it for each started
    one, shared among the ``concurrency`` items a round takes at once. None until an item has
    finished (nothing to time yet) and once the batch stops running."""
    now = timezone.now()
    durations, elapsed = [], []
    for started, finished in items.values_list("started_at", "finished_at"):
        if finished is not None:
            if started is not None:
                durations.append(max((finished - started).total_seconds(), 0.0))
        else:
            elapsed.append((now - started).total_seconds() if started else 0.0)
    done = total - len(elapsed)
    mean = sum(durations) / len(durations) if durations else None
    eta = None
    if mean is not None and batch.status == Batch.Status.RUNNING:
        left = sum(max(mean - spent, 0.0) for spent in elapsed)
        eta = left / min(batch.concurrency, len(elapsed)) if elapsed else 0.0
    return {
        "done": done,
        "mean_item_s": round(mean) if mean is not None else None,
        "timed_items": len(durations),
        "items_per_min": round(60 * batch.concurrency / mean, 2) if mean else None,
        "eta_s": round(eta) if eta is not None else None,
    }
