"""The objective decision rule: the solve hook is the witness, the printed line a claim."""

from __future__ import annotations

import math
import re
from typing import Any

from .result import ObjectiveVerdict, SolverStatus

# The last match wins: models print intermediate values before the final answer.
_PRINTED = re.compile(
    rb"^[ \t]*OBJECTIVE_VALUE:[ \t]*"
    rb"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf(?:inity)?|nan)[ \t]*\r?$",
    re.MULTILINE | re.IGNORECASE,
)
REL_TOL = 1e-6


def parse_printed_objective(stdout: bytes) -> float | None:
    """Return the value of the last ``OBJECTIVE_VALUE: <number>`` line, or None."""
    last = None
    for last in _PRINTED.finditer(stdout):  # noqa: B007 - we want the final match
        pass
    return float(last.group(1)) if last else None


def agrees(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return False
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= REL_TOL * max(1.0, abs(a), abs(b))


def decide(
    solves: list[dict[str, Any]], printed: float | None
) -> tuple[float | None, SolverStatus | None, ObjectiveVerdict]:
    """Pick (objective, solver_status, verdict) from the recorded solves and the printed value.

    The last optimal solve is the answer (a later relaxation or sensitivity run does not
    replace it); with no optimal solve, the last solve's status is reported and there is no
    objective; with no solve at all, a printed number counts for nothing.
    """
    if not solves:
        return None, None, ObjectiveVerdict.NO_SOLVE
    optimal = [s for s in solves if s.get("termination") == SolverStatus.OPTIMAL]
    if not optimal:
        return (
            None,
            SolverStatus(solves[-1].get("termination") or "unknown"),
            (ObjectiveVerdict.NOT_OPTIMAL),
        )
    objective = optimal[-1].get("objective")
    if objective is None:
        return None, SolverStatus.OPTIMAL, ObjectiveVerdict.NOT_OPTIMAL
    if printed is None:
        return objective, SolverStatus.OPTIMAL, ObjectiveVerdict.UNPRINTED
    verdict = (
        ObjectiveVerdict.CONSISTENT if agrees(objective, printed) else (ObjectiveVerdict.MISMATCH)
    )
    return objective, SolverStatus.OPTIMAL, verdict
