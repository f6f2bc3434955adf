"""What runs inside one job process, from just after fork() to _exit().

A child is forked ahead of its job as a *spare* (``prepare_spare``): new session, fds of the
zygote closed, work directory made, optionally warmed by one tiny solve. When the job arrives
(``run_job``): the job's pipes, then the slot uid, the rlimits, and seccomp last. Any failure
before user code runs is reported as a harness error and the job does not run: protections
are never silently weaker than declared.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import io
import linecache
import os
import resource
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from functools import cache
from typing import Any

from . import hooks
from .cgroups import apply_limits
from .protocol import frame

RESULT_FD = 3
HARNESS_EXIT = 113  # exit code of a child whose set-up failed
_PR_SET_PDEATHSIG = 1
_CLONE_NEWNET = 0x40000000


@dataclass
class ChildConfig:
    """What the zygote knows about how to confine a job (fixed for the zygote's lifetime)."""

    drop_uid: bool
    unshare_net: bool
    seccomp: Any  # seccomp.SeccompFilter | None
    libc: Any
    workroot: str
    warm: Any = None  # a callable run by a spare while it waits, to pre-touch the hot pages
    cgroups: dict[str, str] | None = None  # controller -> folder holding one group per slot uid
    cgroup_version: int = 0  # 1 (a folder per controller) or 2 (one folder for both)


SPARE_FD = 4  # a spare's end of its hand-off socket to the zygote


def prepare_spare(cfg: ChildConfig, uid: int, workdir: str, handoff_fd: int, warm: bool) -> None:
    """Turn a freshly forked zygote child into an idle spare for slot ``uid``.

    What does not depend on the job happens here, off the job's critical path: the session,
    the fds, the network namespace, the work directory and (``warm``) one small solve so the
    pages a Pyomo job touches are already copied when the job arrives.
    """
    os.setsid()
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.dup2(handoff_fd, SPARE_FD)
    # Everything else inherited from the zygote goes: its control socket, other spares' and
    # jobs' sockets, the SIGCHLD wake-up pipe.
    os.closerange(3, SPARE_FD)
    os.closerange(SPARE_FD + 1, 1 << 16)

    if cfg.unshare_net and cfg.libc.unshare(_CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
    for folder in sorted(set((cfg.cgroups or {}).values())):
        # Joining a v1 memory cgroup waits for an RCU grace period (~6 ms here): done while
        # the slot is idle, not while a job waits. Children inherit the group.
        _write(f"{folder}/{uid}/cgroup.procs", 0)
    os.mkdir(workdir, 0o700)
    if cfg.drop_uid:
        os.chown(workdir, uid, uid)
    os.chdir(workdir)
    # The spare keeps the zygote's identity until its job arrives, so that every process
    # running as a slot uid belongs to a job (what the post-job sweep relies on).
    cfg.libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:
        os._exit(HARNESS_EXIT)
    # The zygote's environment is already the scrubbed minimum (see zygote.ENV); only the
    # per-job paths change. (os.environ.clear() alone costs ~1.4 ms per job.)
    os.environ["HOME"] = workdir
    os.environ["TMPDIR"] = workdir
    import tempfile

    tempfile.tempdir = workdir
    if warm and cfg.warm is not None and not _job_waiting():
        with contextlib.suppress(Exception):  # warming is an optimisation only
            cfg.warm()
        hooks.begin_job(deadline=None, emit=None)


def _write(path: str, value: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _job_waiting() -> bool:
    """True when the job is already here: then warming would only delay it."""
    import select

    return bool(select.select([SPARE_FD], [], [], 0)[0])


def _confine(cfg: ChildConfig, uid: int, limits: dict[str, Any]) -> float:
    """Identity, per-job rlimits, then seccomp, last. Returns the CPU the spare used so far."""
    mb = 1024 * 1024
    if cfg.cgroups:
        # Still root here: set this job's caps on the slot's group (joined as a spare).
        apply_limits(
            cfg.cgroup_version, cfg.cgroups, uid, limits["memory_mb"] * mb, limits["processes"]
        )
    if cfg.drop_uid:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise OSError("uid drop did not take")
        # A credential change clears the parent-death signal: set it again.
        cfg.libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() == 1:
            raise OSError("the zygote is gone")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime  # by the spare's warm-up: not the job's budget
    cpu = max(1, int(used + limits["cpu_s"] + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_size_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["open_files"],) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if cfg.drop_uid:
        # NPROC counts per real uid: it only means something once the slot has its own uid.
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
    if cfg.seccomp is not None:
        cfg.seccomp.load()
    return used


def _stream(fd: int) -> io.TextIOWrapper:
    # Line-buffered, so what was printed before a SIGKILL at the deadline is not lost.
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw, 8192),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


def _register_source(filename: str, source: str) -> None:
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


@cache
def _library_prefixes() -> list[tuple[str, str]]:
    """Host directories of Python's libraries, longest first, and what a traceback shows for
    them: the model (and the training data made from its trajectories) never sees where this
    host keeps its virtualenv."""
    import sysconfig

    paths = sysconfig.get_paths()
    # The sandbox's own solver wrappers (hooks.py) sit between the model's call and the solver.
    pairs = {os.path.dirname(os.path.abspath(hooks.__file__)): "solver_sandbox"}
    pairs.update({paths[k]: "site-packages" for k in ("purelib", "platlib") if paths.get(k)})
    for k in ("stdlib", "platstdlib"):
        if paths.get(k):
            pairs.setdefault(paths[k], f"python{sys.version_info[0]}.{sys.version_info[1]}")
    return sorted(((p.rstrip("/") + "/", f"{short}/") for p, short in pairs.items()),
                  key=lambda pair: -len(pair[0]))  # fmt: skip


def _user_traceback(exc: BaseException) -> str:
    tb = exc.__traceback__
    # Drop the harness's own frames so the model sees only its code, as in a notebook.
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<"):
        tb = tb.tb_next
    return _shorten("".join(traceback.format_exception(type(exc), exc, tb)))


def _shorten(text: str) -> str:
    for host, short in _library_prefixes():
        text = text.replace(host, short)
    return text


def _short_warnings() -> None:
    """Warnings a library prints name its file too (``…/site-packages/pyomo/…: Deprecated``)."""
    import warnings

    formatwarning = warnings.formatwarning
    warnings.formatwarning = lambda *args, **kwargs: _shorten(formatwarning(*args, **kwargs))


def _describe(exc: BaseException, cell: int | str) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "cell": cell}


def _exec_cell(source: str, filename: str, namespace: dict[str, Any]) -> None:
    _register_source(filename, source)
    try:
        code = compile(source, filename, "exec", dont_inherit=True)
    except (MemoryError, RecursionError):
        # CPython's parser gives up on pathological nesting (``"not " * 20000``) this way;
        # it is the code's fault, not a memory limit.
        message = f"code too deeply nested (or too large) to compile ({filename})"
        raise SyntaxError(message) from None
    exec(code, namespace)  # noqa: S102 - running untrusted code is this module's purpose


def wait_and_run(cfg: ChildConfig) -> None:
    """In a spare: wait for a job from the zygote, then run it. Never returns."""
    import socket

    from .protocol import recv_message

    try:
        got = recv_message(socket.socket(fileno=SPARE_FD))
    except (OSError, EOFError, ValueError):
        got = None
    if got is None:  # the zygote is retiring this spare
        os._exit(0)
    job, fds = got
    run_job(job, cfg, fds)


def run_job(job: dict[str, Any], cfg: ChildConfig, fds: list[int]) -> None:
    """Attach the job's pipes, apply its limits, run its cells, report, and _exit."""
    nonce = job["nonce"].encode()
    write = os.write
    kill = os.kill
    exit_ = os._exit
    dumps = __import__("json").dumps
    suppress = contextlib.suppress

    def emit(kind: bytes, message: dict[str, Any]) -> None:
        # If the job closed or broke its channel, the supervisor will say so.
        with suppress(OSError):
            write(RESULT_FD, frame(nonce, kind, dumps(message, separators=(",", ":")).encode()))

    try:
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        os.dup2(fds[2], RESULT_FD)
        os.closerange(RESULT_FD + 1, 1 << 16)  # the hand-off socket and the received copies
        cpu_before = _confine(cfg, int(job["uid"]), job["limits"])
    except BaseException as exc:
        emit(b"R", {"status": "harness_error", "detail": f"job set-up failed: {exc!r}"})
        exit_(HARNESS_EXIT)

    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives as long as the process
    sys.stdout = _stream(1)
    sys.stderr = _stream(2)
    sys.argv = ["main.py"]
    _short_warnings()
    limits = job["limits"]
    hooks.begin_job(
        deadline=time.monotonic() + float(limits["timeout_s"]),
        emit=lambda rec: emit(b"S", rec),
    )
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    prior_errors: list[dict[str, Any]] = []
    outcome: dict[str, Any] = {"status": "ok", "exit_code": 0}

    # Earlier cells run first and silently (the CoRT persistent-cell behaviour): a failure in
    # one is reported but does not stop the next, as in a notebook.
    prior = job.get("prior_cells") or []
    if prior:
        saved = os.dup(1), os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        for index, source in enumerate(prior):
            hooks.STATE.cell = index
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            try:
                _exec_cell(source, f"<prior-cell-{index}>", namespace)
            except SystemExit:
                pass
            except BaseException as exc:
                prior_errors.append(_describe(exc, index))
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                except Exception:  # noqa: S110 - a cell may have broken its own streams
                    pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
        sys.stdout = _stream(1)
        sys.stderr = _stream(2)

    hooks.STATE.cell = len(prior)
    try:
        _exec_cell(job["code"], "<main>", namespace)
    except SystemExit as exc:
        code = exc.code
        if code not in (None, 0):
            # The supervisor takes exit codes as 32-bit ints (sys.exit(True) is 1).
            fits = isinstance(code, int) and -(2**31) <= code < 2**31
            outcome = {"status": "error", "exit_code": int(code) if fits else 1}
            outcome["error"] = {"type": "SystemExit", "message": str(code), "cell": "main"}
            if not isinstance(code, int):
                print(code, file=sys.stderr)
    except BaseException as exc:
        outcome = {"status": "error", "exit_code": 1, "error": _describe(exc, "main")}
        outcome["memory_error"] = isinstance(exc, MemoryError)
        with suppress(Exception):  # the job may have broken its own stderr
            sys.stderr.write(_user_traceback(exc))
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    try:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime - cpu_before
        outcome["cpu_s"] = max(0.0, used)
        outcome["maxrss_kb"] = max(me.ru_maxrss, kids.ru_maxrss)
    except Exception:  # noqa: S110
        pass
    outcome["prior_cell_errors"] = prior_errors
    emit(b"R", outcome)
    # Closing the pipes now lets the supervisor answer before this process is torn down.
    for fd in (RESULT_FD, 1, 2):
        with contextlib.suppress(OSError):
            os.close(fd)
    if cfg.drop_uid:
        # Anything the job left running (an escaped grandchild in its own session) shares the
        # slot uid: one kill(-1) as that uid ends it. The zygote double-checks.
        with contextlib.suppress(OSError):
            kill(-1, signal.SIGKILL)
    exit_(0)
