"""The one adapter between the engine and the project's solver sandbox, and the line between
a model's failure and the infrastructure's.

A code run whose result says the sandbox itself failed (``harness_error``: the pool could not
start, bubblewrap is missing, the zygote was lost) is an **infrastructure failure**: it says
nothing about the model. The engine stops such a trajectory with the finish reason
``infrastructure`` and never shows the model the sandbox's error; evaluation counts it apart,
the GRPO reward skips it, a curation job fails with the reason. A ``harness_error`` that the
job caused itself (it flooded or tampered with its result channel) stays the model's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

INFRASTRUCTURE = "infrastructure"  # the finish reason of a trajectory the sandbox failed
_JOBS_OWN_FAULT = ("result channel",)  # harness_error details the job's code caused


class RunCode(Protocol):
    def __call__(self, code: str, prior_cells: Sequence[str], timeout_s: float) -> dict[str, Any]:
        """Run ``code`` after re-running ``prior_cells``; return the sandbox result dict."""
        ...


class SandboxUnavailableError(RuntimeError):
    """The solver sandbox cannot run code here: an infrastructure failure, not the model's."""


def run_in_sandbox(code: str, prior_cells: Sequence[str], timeout_s: float) -> dict[str, Any]:
    """Run one code block in ``solver_sandbox`` (its process-wide warm pool) and return
    ``SandboxResult.to_dict()``. A sandbox that cannot run at all is reported as a
    ``harness_error`` result, never raised (``is_infrastructure_failure`` tells it apart)."""
    try:
        from solver_sandbox import Limits, run

        result = run(code, prior_cells=tuple(prior_cells), limits=Limits(timeout_s=timeout_s))
        return result.to_dict()
    except Exception as exc:  # the sandbox's failure is this code call's result
        return {
            "status": "harness_error",
            "stdout": "",
            "stderr": "",
            "detail": f"{type(exc).__name__}: {exc}",
            "objective": None,
            "solves": [],
        }


def is_infrastructure_failure(result: dict[str, Any] | None) -> bool:
    """Whether a code run's result is the sandbox's failure rather than the code's."""
    if not result or result.get("status") != "harness_error":
        return False
    detail = str(result.get("detail") or "")
    return not any(mark in detail for mark in _JOBS_OWN_FAULT)


def infrastructure_reason(result: dict[str, Any]) -> str:
    detail = str(result.get("detail") or "no detail").strip()
    return f"infrastructure: the solver sandbox could not run code: {detail}"[:2000]


PROBE = "print('sandbox ok')\n"


def sandbox_check(run_code: RunCode | None = None, *, timeout_s: float = 30.0) -> None:
    """Run a trivial program before work starts (evaluation, GRPO); raise
    ``SandboxUnavailableError`` with the sandbox's reason when it cannot run code, instead of
    letting every rollout fail."""
    result = (run_code or run_in_sandbox)(PROBE, [], timeout_s)
    if is_infrastructure_failure(result):
        raise SandboxUnavailableError(infrastructure_reason(result))
    if result.get("status") != "ok":
        raise SandboxUnavailableError(
            f"infrastructure: the solver sandbox failed a trivial program: "
            f"{result.get('status')}: {result.get('detail') or result.get('stderr') or ''}"[:2000]
        )
