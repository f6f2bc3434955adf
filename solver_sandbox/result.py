"""What a sandbox run returns."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """How the job ended."""

    OK = "ok"  # the code ran to the end (a solver may still have said "infeasible")
    ERROR = "error"  # an exception, a non-zero exit, a syntax error or a crash signal
    TIMEOUT = "timeout"  # wall-clock deadline: killed from outside
    CPU_LIMIT = "cpu_limit"  # RLIMIT_CPU
    MEMORY_LIMIT = "memory_limit"  # RLIMIT_AS (MemoryError) or the memory cgroup
    OUTPUT_LIMIT = "output_limit"  # printed more than the hard cap: killed
    KILLED = "killed"  # SIGKILL from something other than our deadline or caps
    HARNESS_ERROR = "harness_error"  # the sandbox failed, or the job tampered with its channel


class SolverStatus(StrEnum):
    """A solver's termination, normalized across Pyomo, highspy, PuLP and SciPy."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    INFEASIBLE_OR_UNBOUNDED = "infeasible_or_unbounded"
    TIME_LIMIT = "time_limit"
    ITERATION_LIMIT = "iteration_limit"
    SOLUTION_LIMIT = "solution_limit"
    INTERRUPTED = "interrupted"
    NUMERICAL_ERROR = "numerical_error"
    ERROR = "error"
    UNKNOWN = "unknown"


class ObjectiveVerdict(StrEnum):
    """How the hook's objective and the printed ``OBJECTIVE_VALUE:`` line relate."""

    CONSISTENT = "consistent"  # an optimal solve, and the printed value agrees
    UNPRINTED = "unprinted"  # an optimal solve, nothing printed
    MISMATCH = "mismatch"  # the printed value disagrees with the solve: treat as wrong/hacked
    NOT_OPTIMAL = "not_optimal"  # solves happened, none optimal (infeasible, unbounded, ...)
    NO_SOLVE = "no_solve"  # nothing was solved, whatever was printed


@dataclass
class SandboxResult:
    """One job's outcome. ``to_dict()`` is JSON-able (non-finite floats become null)."""

    status: Status
    objective: float | None = None
    solver_status: SolverStatus | None = None
    objective_verdict: ObjectiveVerdict = ObjectiveVerdict.NO_SOLVE
    solves: list[dict[str, Any]] = field(default_factory=list)
    solve_count: int = 0
    printed_objective: float | None = None
    stdout: str = ""
    stderr: str = ""
    truncated_bytes: int = 0
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    error: dict[str, Any] | None = None  # {"type", "message", "cell"}
    prior_cell_errors: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int | None = None
    signal: str | None = None
    wall_ms: float = 0.0
    cpu_ms: float = 0.0
    max_rss_mb: float = 0.0
    profile: str = ""
    protections: list[str] = field(default_factory=list)
    detail: str = ""  # a human-readable note for harness errors and kills

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    def to_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value
