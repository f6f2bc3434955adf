"""How the zygote is launched: inside one bubblewrap, or bare where bwrap is missing.

bwrap is started once per zygote (per import profile), not per job: wrapping each job costs
~100 ms here, wrapping the pool costs nothing per job.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
UID_BASE = 3_000_000  # far above login uids and the usual /etc/subuid ranges
UID_BLOCK = 64
UID_BLOCKS = 512
SANDBOX_WORKROOT = "/tmp/jobs"  # noqa: S108 - inside bwrap /tmp is a private tmpfs
TMPFS_BYTES = 1 << 30  # the job-writable tmpfs: bounded, so files cannot fill host memory

# bwrap keeps only what the zygote needs to create a work dir, change identity, kill its jobs
# and clean up after them; every other capability, including CAP_SYS_ADMIN, is gone.
_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER")
BWRAP_PROTECTIONS = (
    "bubblewrap",
    "readonly_filesystem",
    "private_tmp",
    "project_files_hidden",
    "network_namespace",
    "pid_namespace",
    "ipc_namespace",
    "uts_namespace",
    "capabilities_dropped",
)


@dataclass
class Launch:
    """The argv and environment that start one zygote, and what that launch protects."""

    argv: list[str]
    env: dict[str, str]
    protections: list[str] = field(default_factory=list)
    workroot: str = SANDBOX_WORKROOT
    mode: str = "bwrap"


def _python_roots() -> list[str]:
    """Directories the interpreter and its packages are read from (bound read-only)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.add(str(Path(os.path.realpath(sys.executable)).parent.parent))
    roots.add(str(PACKAGE_DIR))
    out = []
    for root in sorted(roots, key=len):
        if root.startswith("/usr/") or any(root.startswith(p + "/") or root == p for p in out):
            continue
        out.append(root)
    return out


def _zygote_argv(python: str, profile: str, control_fd: int, flags: dict[str, object]) -> list[str]:
    boot = (
        "import sys; sys.path.insert(0, sys.argv.pop(1)); "
        "from solver_sandbox.zygote import main; main()"
    )
    return [
        python,
        "-I",
        "-c",
        boot,
        str(PACKAGE_DIR.parent),
        profile,
        str(control_fd),
        json.dumps(flags),
    ]


def _base_env() -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": "/tmp",  # noqa: S108 - replaced by the job's own directory
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }


def bwrap_argv(python: str, cgroups: dict[str, str] | None = None) -> list[str]:
    """The bubblewrap prefix: read-only system, hidden project, private /tmp, no network."""
    argv = [
        "bwrap",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--new-session",
        "--clearenv",
    ]
    for key, value in _base_env().items():
        argv += ["--setenv", key, value]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime", "/etc/alternatives"):
        argv += ["--ro-bind-try", etc, etc]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "0755", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp"]  # noqa: S108
    roots = _python_roots()
    if any(r == "/root" or r.startswith("/root/") for r in roots):
        # /root is 0700 on the host; an empty tmpfs in its place lets the slot uids reach the
        # interpreter bound below it without exposing anything else from /root.
        argv += ["--perms", "0755", "--tmpfs", "/root"]
    made: set[str] = set()
    for root in roots:
        # bwrap would create the mount points' parents 0700, which the slot uids could not
        # traverse (lazy imports would fail); make them world-searchable explicitly.
        for parent in reversed(Path(root).parents[:-1]):
            if str(parent) not in made and str(parent) not in ("/root", "/tmp"):  # noqa: S108
                made.add(str(parent))
                argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", root, root]
    for controller, group in (cgroups or {}).items():
        argv += ["--bind", group, f"{CGROUP_MOUNT}/{controller}"]
    argv += ["--remount-ro", "/"]
    if os.geteuid() == 0:
        argv += ["--cap-drop", "ALL"]
        for cap in _CAPS:
            argv += ["--cap-add", cap]
    argv += ["--chdir", "/tmp", "--"]  # noqa: S108 - the private tmpfs
    return argv


@cache
def bwrap_problem() -> str | None:
    """None if bubblewrap can start our kind of sandbox here, else why not."""
    if shutil.which("bwrap") is None:
        return "bwrap not installed"
    try:
        proc = subprocess.run(
            [*bwrap_argv(sys.executable), sys.executable, "-I", "-c", "pass"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap failed to start: {exc}"
    if proc.returncode != 0:
        return f"bwrap failed: {proc.stderr.decode(errors='replace').strip()[:300]}"
    return None


def make_launch(
    profile: str,
    control_fd: int,
    isolation: str,
    fallback_workroot: str,
    slot_uids: list[int],
    cgroups: dict[str, str],
) -> Launch:
    """Pick bwrap or the fallback. ``isolation``: "auto", "bwrap" (required) or "fallback"."""
    python = sys.executable
    if isolation in ("auto", "bwrap"):
        problem = bwrap_problem()
        if problem is None:
            flags = {
                "workroot": SANDBOX_WORKROOT,
                "netns_from_bwrap": True,
                "slot_uids": slot_uids,
                "cgroups": {c: f"{CGROUP_MOUNT}/{c}" for c in cgroups},
            }
            return Launch(
                argv=bwrap_argv(python, cgroups) + _zygote_argv(python, profile, control_fd, flags),
                env=_base_env(),
                protections=list(BWRAP_PROTECTIONS),
            )
        if isolation == "bwrap":
            raise RuntimeError(f"bubblewrap is required but unusable: {problem}")
    flags = {
        "workroot": fallback_workroot,
        "netns_from_bwrap": False,
        "slot_uids": slot_uids,
        "cgroups": cgroups,
    }
    return Launch(
        argv=_zygote_argv(python, profile, control_fd, flags),
        env=_base_env(),
        protections=[],
        workroot=fallback_workroot,
        mode="fallback",
    )


class UidBlock:
    """A block of uids held for this pool's lifetime, one per slot, distinct across pools.

    Two pools on one host (say, two Celery worker processes) must never share a slot uid: the
    post-job kill(-1) sweep as that uid would reach the other pool's job. An flock per block
    is released by the kernel when the holder dies, so a crash frees the block.
    """

    def __init__(self, slots: int) -> None:
        if slots > UID_BLOCK:
            raise ValueError(f"at most {UID_BLOCK} slots per pool")
        lockdir = Path(tempfile.gettempdir()) / "calm-solver-sandbox-uids"
        lockdir.mkdir(mode=0o755, exist_ok=True)
        for block in range(UID_BLOCKS):
            fd = os.open(lockdir / f"{block}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._fd: int | None = fd
            self.block = block
            self.uids = [UID_BASE + block * UID_BLOCK + i for i in range(slots)]
            return
        raise RuntimeError("no free uid block for the sandbox pool")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


CGROUP_CONTROLLERS = ("memory", "pids")
CGROUP_MOUNT = "/run/cgroups"  # where the slot cgroups appear inside bwrap


class SlotCgroups:
    """A cgroup v1 ``memory`` and ``pids`` group per slot, nested under this process's own.

    RLIMIT_AS and RLIMIT_NPROC are per process / per uid; the slot's cgroups cap the job as a
    whole (forked children and files on tmpfs included). Only with root and the v1 controllers
    mounted (as on this machine kind); otherwise ``dirs`` is empty and the pool says so.
    """

    def __init__(self, block: int, uids: list[int]) -> None:
        self.dirs: dict[str, str] = {}
        self._uids = uids
        if os.geteuid() != 0:
            return
        own = {}
        try:
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _id, controllers, path = line.split(":", 2)
                for controller in controllers.split(","):
                    own[controller] = path
        except OSError:
            return
        for controller in CGROUP_CONTROLLERS:
            base = Path("/sys/fs/cgroup") / controller
            if controller not in own or not (base / "cgroup.procs").exists():
                continue
            group = base / own[controller].lstrip("/") / f"calm-sandbox-{block}"
            try:
                group.mkdir(exist_ok=True)
                for uid in uids:
                    (group / str(uid)).mkdir(exist_ok=True)
            except OSError:
                continue
            self.dirs[controller] = str(group)

    def close(self) -> None:
        for group in self.dirs.values():
            # A process still exiting keeps its group busy: an empty cgroup left behind is
            # harmless and reused by the next pool on this uid block.
            for uid in self._uids:
                with contextlib.suppress(OSError):
                    os.rmdir(Path(group) / str(uid))
            with contextlib.suppress(OSError):
                os.rmdir(group)
        self.dirs = {}
