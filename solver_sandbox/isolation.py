"""How the zygote is launched: inside one bubblewrap, or bare where bwrap is missing.

bwrap is started once per zygote (per import profile), not per job: wrapping each job costs
~100 ms here, wrapping the pool costs nothing per job.
"""

from __future__ import annotations

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

from . import seccomp, userns
from .cgroups import SlotCgroups
from .policy import Policy

PACKAGE_DIR = Path(__file__).resolve().parent
UID_BASE = 3_000_000  # far above login uids and the usual /etc/subuid ranges
UID_BLOCK = 64
UID_BLOCKS = 512
SANDBOX_WORKROOT = "/tmp/jobs"  # noqa: S108 - inside bwrap /tmp is a private tmpfs
TMPFS_BYTES = 1 << 30  # the job-writable tmpfs: bounded, so files cannot fill host memory
SHM_BYTES = 256 << 20

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
    handshake: userns.Handshake | None = None  # set when bwrap waits for its user namespace map
    mapping: userns.Mapping | None = None
    pass_fds: list[int] = field(default_factory=list)


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


def bwrap_argv(
    python: str,
    binds: list[tuple[str, str]] = (),  # type: ignore[assignment]
    cgroup_ns: bool = True,
    userns_args: list[str] | None = None,
) -> list[str]:
    """The bubblewrap prefix: read-only system, hidden project, private /tmp, no network.

    ``--die-with-parent``: if the supervisor dies, the kernel kills bwrap and with it the
    zygote and every job (bwrap is started from the pool's long-lived launcher thread, since
    the parent-death signal follows the thread that forked it). ``cgroup_ns`` is off for cgroup
    v2, where a cgroup namespace rooted at the zygote's group would forbid moving jobs into
    the slot groups beside it.
    """
    argv = [
        "bwrap",
        *(userns_args or []),
        "--die-with-parent",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        *(["--unshare-cgroup-try"] if cgroup_ns else []),
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
    # POSIX shared memory and semaphores live in /dev/shm: a private, size-capped tmpfs that
    # jobs can create in but not list (1733), emptied of a slot's files after each of its
    # jobs (SysV IPC and message queues are denied by seccomp).
    argv += ["--perms", "1733", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]  # noqa: S108
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
    for host, inside in binds:
        argv += ["--bind", host, inside]
    argv += ["--remount-ro", "/"]
    if os.geteuid() == 0 or userns_args:
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
    cgroups: SlotCgroups,
    mapping: userns.Mapping | None = None,
) -> Launch:
    """Pick bwrap or the fallback. ``isolation``: "auto", "bwrap" (required) or "fallback".

    With ``mapping`` (not root), bwrap makes a user namespace that the supervisor maps to the
    user's subordinate uids (``Launch.handshake``), and the zygote is uid 0 inside it.
    """
    python = sys.executable
    if isolation in ("auto", "bwrap"):
        problem = bwrap_problem()
        if problem is None:
            handshake = userns.Handshake() if mapping is not None else None
            flags = {
                "workroot": SANDBOX_WORKROOT,
                "netns_from_bwrap": True,
                "slot_uids": slot_uids,
                "cgroups": cgroups.inside_bwrap(),
                "cgroup_version": cgroups.version,
            }
            prefix = bwrap_argv(
                python,
                cgroups.bwrap_binds(),
                cgroup_ns=cgroups.version != 2,
                userns_args=handshake.bwrap_args() if handshake else None,
            )
            return Launch(
                argv=prefix + _zygote_argv(python, profile, control_fd, flags),
                env=_base_env(),
                protections=list(BWRAP_PROTECTIONS) + (["user_namespace"] if handshake else []),
                handshake=handshake,
                mapping=mapping,
                pass_fds=[control_fd, *(handshake.child_fds if handshake else [])],
            )
        if isolation == "bwrap":
            raise RuntimeError(f"bubblewrap is required but unusable: {problem}")
    flags = {
        "workroot": fallback_workroot,
        "netns_from_bwrap": False,
        "slot_uids": slot_uids,
        "cgroups": dict(cgroups.dirs),
        "cgroup_version": cgroups.version,
    }
    return Launch(
        argv=_zygote_argv(python, profile, control_fd, flags),
        env=_base_env(),
        protections=[],
        workroot=fallback_workroot,
        mode="fallback",
        pass_fds=[control_fd],
    )


class UidBlock:
    """Uids held for this pool's lifetime, one per slot, distinct across pools.

    Two pools on one host (say, two Celery worker processes) must never share a slot uid: the
    post-job kill(-1) sweep as that uid would reach the other pool's job. uids come in flock'ed
    blocks of UID_BLOCK; a pool with more slots holds several blocks. The kernel releases the
    locks when the holder dies, so a crash frees them.
    """

    def __init__(self, slots: int, *, userns_blocks: int | None = None) -> None:
        """``userns_blocks``: not root, so uids are in-namespace ones, mapped onto the first
        that many blocks of this user's subordinate range (locked per user)."""
        available = UID_BLOCKS if userns_blocks is None else min(UID_BLOCKS, userns_blocks)
        if not 1 <= slots <= UID_BLOCK * available:
            raise ValueError(f"a pool has 1 to {UID_BLOCK * available} slots here, not {slots}")
        name = "calm-solver-sandbox-uids"
        if userns_blocks is not None:
            name += f"-{os.getuid()}"
        lockdir = Path(tempfile.gettempdir()) / name
        lockdir.mkdir(mode=0o755, exist_ok=True)
        self._fds: list[int] = []
        self.blocks: list[int] = []
        self.uids: list[int] = []
        for block in range(available):
            if len(self.uids) >= slots:
                break
            try:
                flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
                fd = os.open(lockdir / f"{block}.lock", flags, 0o600)
            except PermissionError:  # another user's lock file: that block is theirs
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._fds.append(fd)
            self.blocks.append(block)
            first = UID_BASE + block * UID_BLOCK
            self.uids += range(first, first + min(UID_BLOCK, slots - len(self.uids)))
        if len(self.uids) < slots:
            self.release()
            raise RuntimeError(f"no {slots} free sandbox uids (uid blocks all held)")
        self.block = self.blocks[0]

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


def _unreadable_roots() -> list[str]:
    """Interpreter and package paths this uid cannot use (a venv under /root, say)."""
    bad = []
    exe = os.path.realpath(sys.executable)
    if not os.access(exe, os.X_OK):
        bad.append(exe)
    for root in _python_roots():
        if not os.access(root, os.R_OK | os.X_OK):
            bad.append(root)
    return bad


def userns_mode(isolation: str) -> int | None:
    """How many uid blocks a non-root pool can map in a user namespace; None: not this way."""
    if os.geteuid() == 0 or isolation == "fallback" or bwrap_problem() is not None:
        return None
    if userns.problem(UID_BLOCK) is not None:
        return None
    return userns.max_blocks(UID_BLOCK)


def preflight(isolation: str, policy: Policy) -> list[str]:
    """Why this host cannot give ``policy.minimum`` (empty: go ahead). Fail-closed, before any
    process starts; each line says what is missing and how to provide it or give it up."""
    need = policy.minimum
    problems = []
    bad = _unreadable_roots()
    if bad:
        problems.append(
            f"uid {os.geteuid()} cannot read or execute {', '.join(bad)}: install the "
            "interpreter and virtualenv where the service user can read them (not under /root)"
        )
    root = os.geteuid() == 0
    bwrap_broken = bwrap_problem() if isolation != "fallback" else "isolation='fallback'"
    if not root and need & {"uid_per_slot", "rlimit_nproc"} and userns_mode(isolation) is None:
        why = bwrap_broken or userns.problem(UID_BLOCK)
        problems.append(
            f"not root (uid {os.geteuid()}) and no user namespace with subordinate uids ({why})"
            ": jobs would share this uid and could signal the pool, read each other's pipes "
            "and its memory; run the sandbox worker as root, or give this user subordinate "
            "uids (apt-get install uidmap; usermod --add-subuids/--add-subgids) for a user "
            "namespace with a uid per slot, or accept shared uids with "
            "SANDBOX_GIVE_UP=uid_separation"
        )
    bwrap_needed = need & {"bubblewrap", "readonly_filesystem", "project_files_hidden"}
    if bwrap_needed and bwrap_broken:
        problems.append(
            f"no bubblewrap ({bwrap_broken}): jobs would see the host's filesystem, /tmp and "
            "processes; install it (apt-get install bubblewrap; as a non-root user the kernel "
            "must allow user namespaces: sysctl kernel.unprivileged_userns_clone=1), or accept "
            "that with SANDBOX_GIVE_UP=filesystem_isolation"
        )
    if "network_namespace" in need and bwrap_broken and not root:
        problems.append(
            "no network namespace without bubblewrap or root (only seccomp would block "
            "sockets): provide either, or SANDBOX_GIVE_UP=network_namespace"
        )
    if "seccomp" in need and not seccomp.available():
        problems.append(
            "libseccomp is not installed (no syscall filter): apt-get install libseccomp2, or "
            "SANDBOX_GIVE_UP=syscall_filter"
        )
    return problems
