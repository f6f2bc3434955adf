"""What a pool must provide before it takes work: the minimum protections, and what may be given up.

Full isolation is the default minimum. An operator who cannot have part of it on a host says
so explicitly with ``SANDBOX_GIVE_UP``, by the name of what is given up; nothing is dropped
silently. ``SANDBOX_REQUIRE`` raises the minimum (for example ``cgroup_memory,cgroup_pids`` on
hosts where per-slot cgroups are expected). ``SANDBOX_POOL_SLOTS`` sets the slot count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# What each give-up gives up. The names are what an operator writes in SANDBOX_GIVE_UP.
GIVE_UPS: dict[str, tuple[str, ...]] = {
    # No bubblewrap: the job sees the host's filesystem (as its slot uid), the host's /tmp,
    # /dev/shm and process list.
    "filesystem_isolation": (
        "bubblewrap",
        "readonly_filesystem",
        "project_files_hidden",
        "private_tmp",
        "pid_namespace",
        "uts_namespace",
        "ipc_namespace",
        "capabilities_dropped",
    ),
    # Jobs run as the worker's own uid: they can signal the zygote and each other, and the
    # per-uid process cap and the post-job sweep are gone.
    "uid_separation": ("uid_per_slot", "rlimit_nproc"),
    # Without root and without bwrap there is no network namespace: only seccomp's socket()
    # denial stands between a job and the network.
    "network_namespace": ("network_namespace",),
    # libseccomp missing: no syscall filter (execve, socket, ptrace, SysV IPC ... allowed).
    "syscall_filter": ("seccomp", "sysv_ipc_denied"),
}

ALWAYS = (
    "rlimits",
    "wall_deadline",
    "output_cap",
    "new_session",
    "env_scrubbed",
    "fresh_process_per_job",
)
FULL = frozenset(ALWAYS).union(*GIVE_UPS.values())
CGROUP_PROTECTIONS = frozenset({"cgroup_memory", "cgroup_pids"})

DEFAULT_MAX_SLOTS = 32  # a default, not a limit: past this, set SANDBOX_POOL_SLOTS
MAX_SLOTS = 1024


class SandboxUnavailableError(RuntimeError):
    """The sandbox cannot give the protections it is required to give on this host."""


def _env_list(name: str) -> frozenset[str]:
    raw = os.environ.get(name, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Policy:
    """The minimum a pool must provide: FULL, less what was given up, plus what was required."""

    give_up: frozenset[str] = frozenset()
    require: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.give_up) - set(GIVE_UPS)
        if unknown:
            raise ValueError(
                f"unknown SANDBOX_GIVE_UP value(s): {', '.join(sorted(unknown))} "
                f"(known: {', '.join(GIVE_UPS)})"
            )
        known = FULL | CGROUP_PROTECTIONS
        unknown = set(self.require) - known
        if unknown:
            raise ValueError(f"unknown SANDBOX_REQUIRE protection(s): {', '.join(sorted(unknown))}")

    @classmethod
    def from_env(cls) -> Policy:
        return cls(give_up=_env_list("SANDBOX_GIVE_UP"), require=_env_list("SANDBOX_REQUIRE"))

    @property
    def minimum(self) -> frozenset[str]:
        dropped: set[str] = set()
        for name in self.give_up:
            dropped.update(GIVE_UPS[name])
        return (FULL - dropped) | self.require

    def missing(self, protections: list[str] | set[str]) -> list[str]:
        return sorted(self.minimum - set(protections))


def default_slots(cpu_count: int | None = None) -> int:
    """``SANDBOX_POOL_SLOTS`` if set, else one per core up to DEFAULT_MAX_SLOTS."""
    raw = os.environ.get("SANDBOX_POOL_SLOTS", "").strip()
    if raw:
        return check_slots(int(raw))
    cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
    return max(1, min(cores, DEFAULT_MAX_SLOTS))


def check_slots(slots: int) -> int:
    if not 1 <= slots <= MAX_SLOTS:
        raise ValueError(f"a pool has 1 to {MAX_SLOTS} slots, not {slots}")
    return slots
