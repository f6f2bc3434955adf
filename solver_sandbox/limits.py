"""Per-job resource limits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Limits:
    """What one job may use. The defaults suit interactive review; see ``for_rl``.

    ``timeout_s`` is wall-clock time enforced from outside the job (SIGKILL at the deadline);
    ``cpu_s`` defaults to the same budget and is enforced by RLIMIT_CPU, which catches busy
    loops even when the wall clock is stretched by load.
    """

    timeout_s: float = 10.0
    cpu_s: float | None = None
    memory_mb: int = 2048  # RLIMIT_AS; Pyomo + HiGHS jobs peak well under 0.5 GB
    file_size_mb: int = 32  # RLIMIT_FSIZE
    open_files: int = 256  # RLIMIT_NOFILE
    processes: int = 32  # RLIMIT_NPROC per slot uid (HiGHS worker threads count too)
    output_limit_bytes: int = 4 * 1024 * 1024  # hard cap on stdout+stderr: beyond it, kill
    keep_head_bytes: int = 32 * 1024  # per stream, kept from the start
    keep_tail_bytes: int = 32 * 1024  # per stream, kept from the end (the answer is printed last)

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.cpu_s is not None and self.cpu_s <= 0:
            raise ValueError("cpu_s must be positive")
        if min(self.memory_mb, self.file_size_mb, self.open_files, self.processes) <= 0:
            raise ValueError("limits must be positive")

    @property
    def cpu_budget_s(self) -> float:
        return self.cpu_s if self.cpu_s is not None else self.timeout_s

    @classmethod
    def for_inference(cls) -> Limits:
        """CoRT's budget at inference: 30 s."""
        return cls(timeout_s=30.0)

    @classmethod
    def for_rl(cls) -> Limits:
        """CoRT's budget in RL rollouts: 5 s."""
        return cls(timeout_s=5.0)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Limits:
        """Build from a JSON-able dict (as the Celery task receives it); unknown keys are errors."""
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown limit(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_timeout(self, timeout_s: float) -> Limits:
        return replace(self, timeout_s=timeout_s)
