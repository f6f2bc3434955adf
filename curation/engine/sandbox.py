"""The one adapter between the engine and the project's solver sandbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class RunCode(Protocol):
    def __call__(self, code: str, prior_cells: Sequence[str], timeout_s: float) -> dict[str, Any]:
        """Run ``code`` after re-running ``prior_cells``; return the sandbox result dict."""
        ...


def run_in_sandbox(code: str, prior_cells: Sequence[str], timeout_s: float) -> dict[str, Any]:
    """Run one code block in ``solver_sandbox`` (its process-wide warm pool) and return
    ``SandboxResult.to_dict()``. A sandbox that cannot run at all is reported as a
    ``harness_error`` result, never raised: the trajectory records it and goes on."""
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
