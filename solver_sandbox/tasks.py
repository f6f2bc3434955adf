"""The Celery face of the sandbox: one task on the ``sandbox`` queue wrapping ``run``.

A worker that consumes the ``sandbox`` queue checks at set-up, before it consumes anything,
whether this host can give the configured minimum (policy.py; a few milliseconds); if not it
drops the queue and says why instead of taking work it cannot confine. Once ready it starts a
one-slot pool in the background to see what the host really gives (``worker_sandbox_report``,
shown to admins on /healthz), and cancels the queue if that falls short. Every pool checks the
minimum itself too, so a task never runs below it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any

from celery import shared_task
from celery.signals import (
    celeryd_after_setup,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
)

from .isolation import preflight
from .limits import Limits
from .policy import Policy
from .pool import SandboxPool
from .result import SandboxResult, Status

SANDBOX_QUEUE = "sandbox"  # calm_studio.queues.Queue.SANDBOX; this package imports no Django
REFUSAL_RETRY_S = 60.0
logger = logging.getLogger(__name__)

_pool: SandboxPool | None = None
_pool_lock = threading.Lock()
_refusal: tuple[float, str] | None = None
_report: dict[str, Any] | None = None


def worker_sandbox_report() -> dict[str, Any] | None:
    """What this worker's sandbox gives (``ok``, ``protections``, ...), or why it refused; None
    in processes that do not consume the sandbox queue."""
    return _report


_worker: dict[str, Any] = {}


def _refuse(why: str) -> None:
    global _report
    _report = {"ok": False, "refused": why[:4000]}
    logger.error("not consuming the %s queue: %s", SANDBOX_QUEUE, why)


@celeryd_after_setup.connect
def _check_sandbox(sender: Any, instance: Any, **_kwargs: Any) -> None:
    global _report
    queues = instance.app.amqp.queues
    if SANDBOX_QUEUE not in queues.consume_from:
        return
    try:
        policy = Policy.from_env()
        problems = preflight("auto", policy)
    except ValueError as exc:  # a misspelt SANDBOX_GIVE_UP, say
        problems = [str(exc)]
    if problems:
        queues.deselect(SANDBOX_QUEUE)
        _refuse("the solver sandbox refuses to start: " + "; ".join(problems))
        return
    _report = {"ok": None, "checking": True}
    _worker.update(app=instance.app, hostname=sender)


@worker_ready.connect
def _probe_sandbox(**_kwargs: Any) -> None:
    if _worker:
        threading.Thread(target=_probe, name="sandbox-probe", daemon=True).start()


def _probe() -> None:
    global _report
    try:
        with SandboxPool(slots=1, profiles=("pyomo",)) as probe:
            _report = {"ok": True, **probe.report()}
    except Exception as exc:  # refused, or broken: either way no sandbox work here
        _refuse(str(exc))
        with contextlib.suppress(Exception):  # the broker may be down: the pools refuse anyway
            _worker["app"].control.cancel_consumer(SANDBOX_QUEUE, destination=[_worker["hostname"]])


def _worker_pool() -> SandboxPool:
    # One pool per worker process, created on the first task: a prefork child already runs
    # one task at a time, so one slot is enough unless the worker uses a threaded pool.
    global _pool, _refusal
    with _pool_lock:
        if _pool is None:
            if _refusal is not None and time.monotonic() - _refusal[0] < REFUSAL_RETRY_S:
                raise RuntimeError(_refusal[1])
            try:
                _pool = SandboxPool(slots=int(os.environ.get("SANDBOX_POOL_SLOTS", "1")))
            except (RuntimeError, OSError, ValueError) as exc:
                _refusal = (time.monotonic(), str(exc))
                raise
        return _pool


@worker_process_init.connect
def _prewarm_pool(**_kwargs: Any) -> None:
    # Opt-in (SANDBOX_POOL_PREWARM=1 on hosts that consume the sandbox queue): start the pool
    # in the background so the first task does not pay the ~1.5 s start-up.
    if os.environ.get("SANDBOX_POOL_PREWARM") == "1":
        threading.Thread(target=_try_pool, name="sandbox-prewarm", daemon=True).start()


def _try_pool() -> None:
    try:
        _worker_pool()
    except (RuntimeError, OSError, ValueError) as exc:
        logger.error("sandbox pool did not start: %s", exc)


@worker_process_shutdown.connect
def _close_pool(**_kwargs: Any) -> None:
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


@shared_task(name="solver_sandbox.run_code")  # routed to the sandbox queue by CELERY_TASK_ROUTES
def run_code(
    code: str, prior_cells: list[str] | None = None, limits: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run model-written code in the solver sandbox and return ``SandboxResult.to_dict()``.

    A failing program is a result, not a task failure: nothing here is retried. A sandbox that
    cannot start on this worker is a ``harness_error`` result saying why.
    """
    try:
        pool = _worker_pool()
    except (RuntimeError, OSError, ValueError) as exc:
        return SandboxResult(status=Status.HARNESS_ERROR, detail=str(exc)[:4000]).to_dict()
    result = pool.run(code, prior_cells=tuple(prior_cells or ()), limits=Limits.from_dict(limits))
    return result.to_dict()
