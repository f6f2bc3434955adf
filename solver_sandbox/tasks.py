"""The Celery face of the sandbox: one task on the ``sandbox`` queue wrapping ``run``."""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown

from .limits import Limits
from .pool import SandboxPool

_pool: SandboxPool | None = None
_pool_lock = threading.Lock()


def _worker_pool() -> SandboxPool:
    # One pool per worker process, created on the first task: a prefork child already runs
    # one task at a time, so one slot is enough unless the worker uses a threaded pool.
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = SandboxPool(slots=int(os.environ.get("SANDBOX_POOL_SLOTS", "1")))
        return _pool


@worker_process_init.connect
def _prewarm_pool(**_kwargs: Any) -> None:
    # Opt-in (SANDBOX_POOL_PREWARM=1 on hosts that consume the sandbox queue): start the pool
    # in the background so the first task does not pay the ~1.5 s start-up.
    if os.environ.get("SANDBOX_POOL_PREWARM") == "1":
        threading.Thread(target=_worker_pool, name="sandbox-prewarm", daemon=True).start()


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

    A failing program is a result, not a task failure: nothing here is retried.
    """
    result = _worker_pool().run(
        code, prior_cells=tuple(prior_cells or ()), limits=Limits.from_dict(limits)
    )
    return result.to_dict()
