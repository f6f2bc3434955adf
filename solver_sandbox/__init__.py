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
from collections.abc import Sequence

from .hooks import SolverUnavailableError
from .limits import Limits
from .pool import SandboxPool
from .result import ObjectiveVerdict, SandboxResult, SolverStatus, Status

__all__ = [
    "Limits",
    "ObjectiveVerdict",
    "SandboxPool",
    "SandboxResult",
    "SolverStatus",
    "SolverUnavailableError",
    "Status",
    "default_pool",
    "run",
    "shutdown_default_pool",
]

_default: SandboxPool | None = None
_default_lock = threading.Lock()


def default_pool() -> SandboxPool:
    """The process-wide pool, started on first use and stopped at interpreter exit."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SandboxPool()
            atexit.register(shutdown_default_pool)
        return _default


def shutdown_default_pool() -> None:
    """Stop the process-wide pool, if one was started (a later ``run`` starts a new one)."""
    global _default
    with _default_lock:
        pool, _default = _default, None
    if pool is not None:
        pool.close()


def run(
    code: str, *, prior_cells: Sequence[str] = (), limits: Limits | None = None
) -> SandboxResult:
    """Run ``code`` in the sandbox after silently re-running ``prior_cells``; never raises for
    anything the code does: failures, kills and limits come back as ``result.status``."""
    return default_pool().run(code, prior_cells=prior_cells, limits=limits)
