"""The zygote: a warm, single-threaded Python that forks one fresh child per job.

It holds only imported modules and the code of the job it is handing over; outputs and
results flow from each child straight to the supervisor over pipes the supervisor made. It
keeps one forked spare per slot ready (forked, set up and warmed while the slot is idle), reaps,
kills on request, sweeps the slot uid after each job and removes the work directory before it
reports the job finished, so a slot is only reused once nothing of the last job is left.

Run as ``python -c 'from solver_sandbox.zygote import main; main()' PROFILE CONTROL_FD FLAGS``.
"""

from __future__ import annotations

import os
import sys

# The environment every job starts with (HOME and TMPDIR are set per job). Set before numpy
# is imported anywhere: the zygote must stay single-threaded to fork safely.
ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/tmp",  # noqa: S108 - each job gets its own directory instead
    "USER": "sandbox",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
os.environ.clear()
os.environ.update(ENV)

import contextlib  # noqa: E402
import ctypes  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import selectors  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

PROFILES = ("pyomo", "scipy")
HARNESS_EXIT = 113  # as harness.HARNESS_EXIT; the harness is imported lazily
_PR_SET_CHILD_SUBREAPER = 36

# Imported up front: a uid-dropped job cannot lazily import stdlib modules when the
# interpreter lives under a 0700 directory (/root/.pyenv without bwrap), and importing in the
# zygote makes them free for every job.
PRELOAD = [
    "encodings.idna",
    "encodings.latin_1",
    "encodings.ascii",
    "encodings.utf_16",
    "json",
    "math",
    "cmath",
    "decimal",
    "fractions",
    "statistics",
    "random",
    "itertools",
    "functools",
    "collections",
    "collections.abc",
    "heapq",
    "bisect",
    "copy",
    "string",
    "re",
    "datetime",
    "typing",
    "dataclasses",
    "enum",
    "textwrap",
    "pprint",
    "operator",
    "traceback",
    "io",
    "csv",
    "logging",
    "warnings",
    "contextlib",
    "numbers",
    "array",
    "struct",
    "ctypes",
    "ctypes.util",
    "socket",
    "subprocess",
    "threading",
    "queue",
    "tempfile",
    "shutil",
    "pathlib",
    "glob",
    "platform",
    "errno",
    "weakref",
    "abc",
    "inspect",
    "ast",
    "linecache",
    "tokenize",
    "unicodedata",
    "hashlib",
    "base64",
    "zlib",
    "pickle",
    "uuid",
    "locale",
    "argparse",
    "timeit",
    "secrets",
    "difflib",
    "time",
    "signal",
    "select",
    "selectors",
    "concurrent.futures",
    "zipfile",
    "gzip",
]
# Only needed when the stdlib is unreadable to the slot uids (no bwrap); they make every fork
# a little dearer, so bwrap mode skips them.
PRELOAD_FALLBACK = [
    "asyncio",
    "urllib.request",
    "http.client",
    "email.parser",
    "multiprocessing",
    "sqlite3",
]


def _warm_pyomo() -> None:
    import pyomo.environ as pyo

    for integer in (False, True):
        m = pyo.ConcreteModel()
        domain = pyo.NonNegativeIntegers if integer else pyo.NonNegativeReals
        m.x = pyo.Var(within=domain)
        m.y = pyo.Var(within=domain)
        m.c1 = pyo.Constraint(expr=m.x + 2 * m.y <= 14)
        m.c2 = pyo.Constraint(expr=3 * m.x - m.y >= 0)
        m.obj = pyo.Objective(expr=3 * m.x + 4 * m.y, sense=pyo.maximize)
        for name in ("highs", "appsi_highs"):
            pyo.SolverFactory(name).solve(m)
    pyo.SolverFactory("gurobi")  # warms the unavailable-solver path


def _warm_spare() -> None:
    """What a spare runs while it waits: the common path of a Pyomo job, on a tiny LP."""
    import pyomo.environ as pyo

    m = pyo.ConcreteModel()
    m.x = pyo.Var(within=pyo.NonNegativeReals)
    m.y = pyo.Var(within=pyo.NonNegativeReals)
    m.c = pyo.Constraint(expr=m.x + 2 * m.y <= 14)
    m.obj = pyo.Objective(expr=3 * m.x + 4 * m.y, sense=pyo.maximize)
    pyo.SolverFactory("highs").solve(m)
    pyo.value(m.obj)


def _warm_scipy() -> None:
    import pulp
    from scipy.optimize import linprog, milp  # noqa: F401

    linprog([-1, -2], A_ub=[[1, 1]], b_ub=[4], bounds=[(0, None)] * 2, method="highs")
    prob = pulp.LpProblem("warm", pulp.LpMaximize)
    x = pulp.LpVariable("x", 0, 3)
    prob += x
    prob.solve()


def _load_profile(profile: str, fallback: bool) -> None:
    import numpy  # noqa: F401

    from . import hooks

    hooks.install()
    import highspy
    import pyomo.environ  # noqa: F401

    hooks.install()
    _warm_pyomo()
    if profile == "scipy":
        import pulp  # noqa: F401
        import scipy.optimize  # noqa: F401

        hooks.install()
        _warm_scipy()
    for name in PRELOAD + (PRELOAD_FALLBACK if fallback else []):
        try:
            __import__(name)
        except Exception:  # noqa: S112 - a missing optional stdlib module is fine
            continue
    # A threaded HiGHS solve in the parent deadlocks HiGHS in forked children.
    highspy.Highs.resetGlobalScheduler(True)
    hooks.begin_job(deadline=None, emit=None)


class _Job:
    __slots__ = ("id", "killed", "pid", "status_sock", "uid", "workdir")

    def __init__(self, job_id: str, pid: int, uid: int, workdir: str, sock: socket.socket):
        self.id = job_id
        self.pid = pid
        self.uid = uid
        self.workdir = workdir
        self.status_sock = sock
        self.killed = False


class _Spare:
    """A forked, confined child for one slot uid, waiting for its job on ``sock``."""

    __slots__ = ("pid", "sock", "uid", "workdir")

    def __init__(self, pid: int, sock: socket.socket, uid: int, workdir: str) -> None:
        self.pid = pid
        self.sock = sock
        self.uid = uid
        self.workdir = workdir


class Zygote:
    def __init__(self, profile: str, control: socket.socket, flags: dict[str, Any]) -> None:
        from .harness import ChildConfig

        self.profile = profile
        self.control = control
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.is_root = os.geteuid() == 0
        self.workroot = flags["workroot"]
        os.makedirs(self.workroot, mode=0o711, exist_ok=True)
        # Searchable, not listable: a slot uid reaches its own job directory and no other.
        os.chmod(self.workroot, 0o711)  # noqa: S103
        self.protections: list[str] = []
        seccomp_filter = None
        if flags.get("seccomp", True):
            from . import seccomp

            seccomp_filter = seccomp.build()
        if seccomp_filter is not None:
            self.protections.append("seccomp")
        drop_uid = self.is_root
        unshare_net = self.is_root and not flags.get("netns_from_bwrap", False)
        self.child_config = ChildConfig(
            drop_uid=drop_uid,
            unshare_net=unshare_net,
            seccomp=seccomp_filter,
            libc=self.libc,
            workroot=self.workroot,
            warm=_warm_spare,
            cgroups=self._usable_cgroups(flags.get("cgroups") or {}, flags.get("slot_uids", [])),
            cgroup_version=int(flags.get("cgroup_version") or 0),
        )
        if seccomp_filter is not None:
            self.protections.append("sysv_ipc_denied")
        # POSIX shm / semaphores: the job's files in /dev/shm go with the job (only a slot
        # uid's files can be told apart from everyone else's).
        self.shm_sweep = drop_uid
        for controller in self.child_config.cgroups or {}:
            self.protections.append(f"cgroup_{controller}")
        self.oom_seen = {uid: self._oom_kills(uid) for uid in flags.get("slot_uids", [])}
        self.slot_uids = [int(u) for u in flags.get("slot_uids", [])]
        self.spares: dict[int, _Spare] = {}
        self.spare_pids: dict[int, _Spare] = {}
        self.serial = 0
        self.closing = False
        if drop_uid:
            self.protections += ["uid_per_slot", "rlimit_nproc"]
        if unshare_net:
            self.protections.append("network_namespace")
        self.protections += ["rlimits", "new_session", "env_scrubbed", "fresh_process_per_job"]
        if self.libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
            self.protections.append("subreaper")
        self.jobs: dict[int, _Job] = {}
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        self.sel.register(self.control, selectors.EVENT_READ, "control")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")

    @staticmethod
    def _usable_cgroups(cgroups: dict[str, str], uids: list[int]) -> dict[str, str]:
        usable = {}
        for controller, folder in cgroups.items():
            if uids and all(os.access(f"{folder}/{u}/cgroup.procs", os.W_OK) for u in uids):
                usable[controller] = folder
        return usable

    def _oom_kills(self, uid: int) -> int:
        from .cgroups import oom_kills

        folder = (self.child_config.cgroups or {}).get("memory")
        if folder is None:
            return 0
        return oom_kills(self.child_config.cgroup_version, folder, uid)

    @staticmethod
    def _sweep_shm(uid: int) -> int:
        """Remove the POSIX shm segments and semaphores (/dev/shm files) a slot uid left."""
        removed = 0
        try:
            entries = list(os.scandir("/dev/shm"))  # noqa: S108 - cleaning it, not using it
        except OSError:
            return 0
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid == uid:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        return removed

    # ------------------------------------------------------------------ main loop

    def serve(self) -> None:
        from .protocol import send_message

        gc.collect()
        gc.freeze()  # children inherit a frozen heap: no GC-driven copy-on-write, no finalizers
        threads = len(os.listdir("/proc/self/task"))
        for uid in self.slot_uids:
            self._spawn_spare(uid, warm=True)
        send_message(
            self.control,
            {
                "event": "ready",
                "pid": os.getpid(),
                "profile": self.profile,
                "protections": self.protections,
                "threads": threads,
                "root": self.is_root,
            },
        )
        while True:
            for key, _ in self.sel.select():
                if key.data == "control":
                    if not self._on_control():
                        self._shutdown()
                        return
                elif key.data == "wake":
                    try:
                        while os.read(self.wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                    self._reap()
                else:
                    self._on_status(key.data)

    def _on_control(self) -> bool:
        from .protocol import recv_message

        try:
            got = recv_message(self.control)
        except (OSError, EOFError, ValueError):
            return False
        if got is None:
            return False
        message, fds = got
        if message.get("op") != "job" or len(fds) != 4:
            for fd in fds:
                os.close(fd)
            return True
        self._start(message, fds)
        return True

    def _spawn_spare(self, uid: int, *, warm: bool) -> _Spare:
        from .harness import prepare_spare, wait_and_run

        self.serial += 1
        workdir = os.path.join(self.workroot, f"u{uid}-{self.serial}")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                prepare_spare(self.child_config, uid, workdir, theirs.fileno(), warm)
                wait_and_run(self.child_config)
            finally:
                os._exit(HARNESS_EXIT)
        theirs.close()
        spare = _Spare(pid, ours, uid, workdir)
        self.spares[uid] = spare
        self.spare_pids[pid] = spare
        return spare

    def _start(self, job: dict[str, Any], fds: list[int]) -> None:
        from .protocol import send_message

        status_sock = socket.socket(fileno=fds[3])
        uid = int(job["uid"])
        handed = None
        for attempt in range(2):
            spare = self.spares.pop(uid, None)
            if spare is None or attempt:
                spare = self._spawn_spare(uid, warm=False)
                self.spares.pop(uid, None)
            try:
                send_message(spare.sock, job, fds[:3])
                handed = spare
                break
            except OSError:
                self._retire(spare)
        for fd in fds[:3]:
            os.close(fd)
        if handed is None:
            with contextlib.suppress(OSError):
                send_message(status_sock, {"event": "exit", "status": HARNESS_EXIT << 8})
            status_sock.close()
            return
        handed.sock.close()
        self.spare_pids.pop(handed.pid, None)
        record = _Job(job["id"], handed.pid, uid, handed.workdir, status_sock)
        self.jobs[handed.pid] = record
        self.sel.register(status_sock, selectors.EVENT_READ, record)

    def _retire(self, spare: _Spare) -> None:
        """Stop a spare that will not be used, and remove its work directory."""
        spare.sock.close()
        if self.spare_pids.pop(spare.pid, None) is not None:  # not reaped yet: pid still ours
            with contextlib.suppress(OSError):
                os.kill(spare.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(spare.pid, 0)
        shutil.rmtree(spare.workdir, ignore_errors=True)
        if self.spares.get(spare.uid) is spare:
            del self.spares[spare.uid]

    def _on_status(self, job: _Job) -> None:
        try:
            data = job.status_sock.recv(64)
        except OSError:
            data = b""
        if not data or b"K" in data:  # kill request, or the supervisor gave up on the job
            self._kill(job)
        if not data:
            self.sel.unregister(job.status_sock)

    def _kill(self, job: _Job) -> None:
        if job.killed:
            return
        job.killed = True
        for target in (-job.pid, job.pid):  # the job's own session first, then the leader
            with contextlib.suppress(OSError):
                os.kill(target, signal.SIGKILL)

    def _reap(self) -> None:
        """Reap every child that has exited: the one loop, on SIGCHLD and in the slot sweep.

        A job's child is finished (reported, swept, its folder removed); a spare that died
        before it got a job is dropped and its folder removed (the next job forks a fresh one);
        anything else is an orphan reparented to us, just reaped."""
        while True:
            try:
                pid, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            job = self.jobs.pop(pid, None)
            if job is not None:
                self._finish(job, status, rusage)
            elif pid in self.spare_pids:
                self._drop_dead_spare(self.spare_pids.pop(pid))

    def _drop_dead_spare(self, spare: _Spare) -> None:
        if self.spares.get(spare.uid) is spare:
            del self.spares[spare.uid]
        spare.sock.close()
        shutil.rmtree(spare.workdir, ignore_errors=True)

    def _finish(self, job: _Job, status: int, rusage: Any) -> None:
        from .protocol import send_message

        t0 = time.perf_counter()
        with contextlib.suppress(OSError):
            os.kill(-job.pid, signal.SIGKILL)
        swept = self._sweep(job.uid) if self.child_config.drop_uid else 0
        if self.shm_sweep:
            self._sweep_shm(job.uid)
        oom = self._oom_kills(job.uid)
        oom_killed = oom > self.oom_seen.get(job.uid, 0)
        self.oom_seen[job.uid] = oom
        shutil.rmtree(job.workdir, ignore_errors=True)
        message = {
            "event": "exit",
            "status": status,
            "utime": rusage.ru_utime,
            "stime": rusage.ru_stime,
            "maxrss_kb": rusage.ru_maxrss,
            "swept": swept,
            "oom_killed": oom_killed,
            "cleanup_ms": round((time.perf_counter() - t0) * 1000, 3),
        }
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(job.status_sock)
        with contextlib.suppress(OSError):
            send_message(job.status_sock, message)
        job.status_sock.close()
        if not self.closing and job.uid not in self.spares:
            # The slot is clean again: prepare its next child now, while the supervisor is
            # still busy with this result. (A spare whose job is already waiting skips the
            # warm-up; one that is mid-warm-up finishes it, which the job mostly gets back as
            # copy-on-write faults it no longer takes.)
            self._spawn_spare(job.uid, warm=True)

    # ------------------------------------------------------------------ slot sweep

    def _uid_processes(self, uid: int) -> list[int]:
        found = []
        me = os.getpid()
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == me:
                continue
            try:
                with open(f"/proc/{name}/status", "rb") as fh:
                    text = fh.read()
            except OSError:
                continue
            state = uid_line = b""
            for line in text.split(b"\n"):
                if line.startswith(b"State:"):
                    state = line
                elif line.startswith(b"Uid:"):
                    uid_line = line
                    break
            fields = uid_line.split()
            if len(fields) > 1 and int(fields[1]) == uid and b"(zombie)" not in state:
                found.append(int(name))
        return found

    def _sweep(self, uid: int) -> int:
        """Kill whatever still runs as the slot uid (an escaped grandchild); return how many."""
        total = 0
        for _attempt in range(20):
            self._reap()
            left = self._uid_processes(uid)
            if not left:
                return total
            total = max(total, len(left))
            pid = os.fork()
            if pid == 0:  # a helper that becomes the slot uid so kill(-1) reaches only it
                try:
                    os.setresgid(uid, uid, uid)
                    os.setresuid(uid, uid, uid)
                    for _ in range(3):
                        os.kill(-1, signal.SIGKILL)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
            time.sleep(0.002)
        return total

    def _shutdown(self) -> None:
        self.closing = True
        for spare in list(self.spares.values()):
            self._retire(spare)
        for job in list(self.jobs.values()):
            self._kill(job)
        deadline = time.monotonic() + 2
        while self.jobs and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.01)


def main() -> None:
    profile, control_fd, flags = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    if profile not in PROFILES:
        raise SystemExit(f"unknown profile {profile!r}")
    control = socket.socket(fileno=control_fd)
    try:
        _load_profile(profile, fallback=not flags.get("netns_from_bwrap", False))
        zygote = Zygote(profile, control, flags)
    except BaseException as exc:
        from .protocol import send_message

        send_message(control, {"event": "failed", "error": repr(exc)})
        raise
    zygote.serve()
