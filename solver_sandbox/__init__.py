"""Run model-written Pyomo/HiGHS code fast, safely, and with an honest objective.

    from solver_sandbox import run
    result = run(code, prior_cells=earlier_blocks)
    result.status, result.objective, result.solver_status, result.stdout

``run`` uses a process-wide pool created on first use; make a ``SandboxPool`` yourself to
choose slots, profiles or isolation. See README.md in this folder for the design.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Sequence

from .hooks import SolverUnavailableError
from .limits import Limits
from .policy import Policy, SandboxUnavailableError
from .pool import SandboxPool
from .result import ObjectiveVerdict, SandboxResult, SolverStatus, Status

__all__ = [
    "Limits",
    "ObjectiveVerdict",
    "Policy",
    "SandboxPool",
    "SandboxResult",
    "SandboxUnavailableError",
    "SolverStatus",
    "SolverUnavailableError",
    "Status",
    "default_pool",
    "run",
    "shutdown_default_pool",
]

_default: SandboxPool | None = None
_default_lock = threading.Lock()
_refusal: tuple[float, Exception] | None = None
REFUSAL_RETRY_S = 60.0  # a pool that could not start is not retried on every call


def default_pool() -> SandboxPool:
    """The process-wide pool, started on first use and stopped at interpreter exit.

    If it cannot start (refused below the minimum protections, say), the same error is
    raised again for REFUSAL_RETRY_S without trying again."""
    global _default, _refusal
    with _default_lock:
        if _default is None:
            if _refusal is not None and time.monotonic() - _refusal[0] < REFUSAL_RETRY_S:
                raise _refusal[1]
            try:
                _default = SandboxPool()
            except (RuntimeError, OSError, ValueError) as exc:
                _refusal = (time.monotonic(), exc)
                raise
            _refusal = None
            atexit.register(shutdown_default_pool)
        return _default


def shutdown_default_pool() -> None:
    """Stop the process-wide pool, if one was started (a later ``run`` starts a new one)."""
    global _default, _refusal
    with _default_lock:
        pool, _default, _refusal = _default, None, None
    if pool is not None:
        pool.close()


def run(
    code: str, *, prior_cells: Sequence[str] = (), limits: Limits | None = None
) -> SandboxResult:
    """Run ``code`` in the sandbox after silently re-running ``prior_cells``; never raises:
    failures, kills and limits come back as ``result.status``, and a sandbox that cannot
    start (or refuses to, below its minimum protections) as ``harness_error`` with the reason
    in ``detail``."""
    try:
        pool = default_pool()
    except (RuntimeError, OSError, ValueError) as exc:
        return SandboxResult(status=Status.HARNESS_ERROR, detail=str(exc)[:4000])
    return pool.run(code, prior_cells=prior_cells, limits=limits)
