"""The supervisor: owns the zygotes, hands out slots, enforces deadlines and caps, builds results.

It lives outside the sandbox and is the only place that holds job data (code in, output and
results out). Each ``run`` call drives its own job from the calling thread, so concurrent
callers (threads) need no event loop; the number of slots bounds concurrency.
"""

from __future__ import annotations

import ast
import contextlib
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from itertools import count
from typing import Any

from . import isolation as _iso
from . import userns
from .cgroups import SlotCgroups
from .jobio import JobIO
from .limits import Limits
from .policy import Policy, SandboxUnavailableError, check_slots, default_slots
from .protocol import recv_message, send_message
from .result import SandboxResult, Status
from .threads import Launcher, Pending, Reclaimer

_SCIPY_ROOTS = {"scipy", "pulp"}
_READY_TIMEOUT_S = 120.0


_SCIPY_TEXT = re.compile(r"^[ \t]*(?:import|from)[ \t]+(?:scipy|pulp)\b", re.MULTILINE)
_MAX_PARSE = 1 << 20  # characters; longer sources are routed by a text scan


def route(code: str, prior_cells: Sequence[str] = ()) -> str:
    """Pick the import profile: SciPy/PuLP code goes to the fatter zygote, the rest to Pyomo's.

    Never raises: a source the parser cannot take (too deep, too long, not valid) is routed by
    a plain text scan, and the job reports the compile error itself.
    """
    for source in (*prior_cells, code):
        if not isinstance(source, str):
            continue
        try:
            if len(source) > _MAX_PARSE:
                raise ValueError("too long to parse here")
            tree = ast.parse(source)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            if _SCIPY_TEXT.search(source):
                return "scipy"
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            if any(n.split(".")[0] in _SCIPY_ROOTS for n in names):
                return "scipy"
    return "pyomo"


class _ZygoteHandle:
    """One running zygote (inside its own bwrap, or bare) and its control socket."""

    def __init__(
        self,
        profile: str,
        isolation_mode: str,
        workroot: str,
        slot_uids: list[int],
        cgroups: SlotCgroups,
        launcher: Launcher,
        mapping: userns.Mapping | None,
    ) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.profile = profile
        self.sock = ours
        self.lock = threading.Lock()
        launch = None
        try:
            launch = _iso.make_launch(
                profile, theirs.fileno(), isolation_mode, workroot, slot_uids, cgroups, mapping
            )
            self.launch = launch
            self.proc = launcher.popen(launch.argv, launch.env, launch.pass_fds)
        except BaseException:
            ours.close()
            if launch is not None and launch.handshake is not None:
                launch.handshake.abandon()
            raise
        finally:
            theirs.close()
        if launch.handshake is not None:
            try:  # bwrap waits until its user namespace is mapped to our subordinate uids
                launch.handshake.complete(launch.mapping)
            except (OSError, RuntimeError, ValueError) as exc:
                self.close()
                raise RuntimeError(f"sandbox zygote {profile!r}: user namespace: {exc}") from exc
        self.sock.settimeout(_READY_TIMEOUT_S)
        try:
            got = recv_message(self.sock)
        except (OSError, EOFError, ValueError) as exc:
            self.close()
            raise RuntimeError(f"sandbox zygote {profile!r} did not start: {exc!r}") from exc
        self.sock.settimeout(None)
        if got is None or got[0].get("event") != "ready":
            self.close()
            raise RuntimeError(f"sandbox zygote {profile!r} failed to start: {got and got[0]}")
        info = got[0]
        self.protections = sorted(
            {*self.launch.protections, *info["protections"], "wall_deadline", "output_cap"}
        )
        self.threads = info.get("threads")
        self.broken = False

    def alive(self) -> bool:
        return not self.broken and self.proc.poll() is None

    def submit(self, message: dict[str, Any], fds: list[int]) -> None:
        with self.lock:
            send_message(self.sock, message, fds)

    def close(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError):
            self.sock.close()
        try:
            self.proc.wait(timeout=5)  # closing the socket asks the zygote to stop
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class SandboxPool:
    """A warm pool of sandboxed Python processes for model-written solver code.

    ``slots`` jobs run at once (default ``SANDBOX_POOL_SLOTS``, else one per core up to 32);
    each job gets a fresh forked child of a warm zygote, its own uid, and is never reused.
    ``policy`` (default: from ``SANDBOX_GIVE_UP`` / ``SANDBOX_REQUIRE``) is the minimum the
    pool must provide: below it, the constructor raises ``SandboxUnavailableError`` saying
    what is missing. Thread-safe; use as a context manager or call ``close()``.
    """

    def __init__(
        self,
        *,
        slots: int | None = None,
        profiles: Sequence[str] = ("pyomo", "scipy"),
        isolation: str = "auto",
        limits: Limits | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.slots = check_slots(slots) if slots else default_slots()
        self.limits = limits or Limits()
        self.isolation = isolation
        self.policy = policy if policy is not None else Policy.from_env()
        self._closed = True  # until everything below is up
        problems = _iso.preflight(isolation, self.policy)
        if problems:
            raise SandboxUnavailableError(
                "the solver sandbox refuses to start: " + "; ".join(problems)
            )
        blocks = _iso.userns_mode(isolation)  # not root: a mapped user namespace, if possible
        self._uids = _iso.UidBlock(self.slots, userns_blocks=blocks)
        self._mapping = (
            userns.Mapping(_iso.UID_BASE, _iso.UID_BLOCK, self._uids.blocks)
            if blocks is not None
            else None
        )
        self._cgroups = SlotCgroups(self._uids.block, self._uids.uids)
        self._launcher = Launcher()
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for uid in self._uids.uids:
            self._free.put(uid)
        self._workroot = tempfile.mkdtemp(prefix="calm-sandbox-")
        os.chmod(self._workroot, 0o711)  # noqa: S103 - searchable, not listable (fallback jobs)
        self._lock = threading.Lock()
        self._zygotes: dict[str, _ZygoteHandle] = {}
        self._profiles = tuple(profiles)
        self._ids = count()
        self._closed = False
        self._reclaimer = Reclaimer(self._free)
        self._zygote_error = ""
        # Boot the profiles side by side: each costs ~1 s of imports and warm-up.
        threads = [threading.Thread(target=self._boot, args=(p,)) for p in self._profiles]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in self._profiles:
            if p not in self._zygotes:
                self.close()
                raise RuntimeError(f"sandbox profile {p!r} failed to start: {self._zygote_error}")
        missing = self.policy.missing(self.protections)
        if missing:
            self.close()
            why = f" ({self._cgroups.problem})" if self._cgroups.problem else ""
            raise SandboxUnavailableError(
                "the solver sandbox refuses to start: its jobs would lack "
                f"{', '.join(missing)}{why}; provide them, or give them up explicitly with "
                "SANDBOX_GIVE_UP (see solver_sandbox/README.md)"
            )

    def _boot(self, profile: str) -> None:
        try:
            self._zygote(profile)
        except Exception as exc:  # reported by __init__
            self._zygote_error = str(exc)

    # ------------------------------------------------------------------ public API

    @property
    def slot_uids(self) -> list[int]:
        """The slots' uids as the host sees them (subordinate uids in a user namespace)."""
        if self._mapping is not None:
            return [self._mapping.host_uid(u) for u in self._uids.uids]
        return list(self._uids.uids)

    @property
    def protections(self) -> list[str]:
        """What confines a Pyomo-profile job in this pool."""
        return list(self._zygote(self._profiles[0]).protections)

    def report(self) -> dict[str, Any]:
        """What this pool gives its jobs, for /healthz and logs."""
        return {
            "slots": self.slots,
            "protections": self.protections,
            "minimum": sorted(self.policy.minimum),
            "given_up": sorted(self.policy.give_up),
            "cgroup_version": self._cgroups.version or None,
            "cgroup_problem": self._cgroups.problem,
        }

    @property
    def runs_as_slot_uids(self) -> bool:
        """True when each slot's jobs run under their own uid (needs root)."""
        return "uid_per_slot" in self.protections

    def zygote_pids(self) -> dict[str, int]:
        """Host pids of the running zygote launchers (bwrap or the zygote itself), by profile."""
        with self._lock:
            return {p: z.proc.pid for p, z in self._zygotes.items() if z.alive()}

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no job holds a slot (each slot is released once its job is cleaned up)."""
        deadline = time.monotonic() + timeout
        while self._free.qsize() < self.slots:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def run(
        self, code: str, *, prior_cells: Sequence[str] = (), limits: Limits | None = None
    ) -> SandboxResult:
        """Run ``code`` (after ``prior_cells``, silently) in a fresh sandboxed process."""
        if self._closed:
            raise RuntimeError("pool is closed")
        limits = limits or self.limits
        profile = route(code, prior_cells)
        if profile not in self._profiles:
            profile = self._profiles[0]
        uid = self._free.get()
        handed_off = False
        try:
            try:
                result, pending = self._run(code, list(prior_cells), limits, profile, uid)
            except Exception as exc:  # run() answers, whatever happened
                detail = f"sandbox failure: {type(exc).__name__}: {exc}"[:2000]
                return SandboxResult(status=Status.HARNESS_ERROR, detail=detail, profile=profile)
            if pending is not None:
                # The answer is complete, but the job's process may still be exiting: the slot
                # returns to the free list only once the zygote reports it swept and clean.
                self._reclaimer.watch(pending, uid, time.monotonic() + limits.timeout_s)
                handed_off = True
            return result
        finally:
            if not handed_off:
                self._free.put(uid)

    def close(self) -> None:
        """Stop the zygotes (their jobs are killed) and release the uid block."""
        self._closed = True
        self._reclaimer.stop()
        with self._lock:
            zygotes, self._zygotes = list(self._zygotes.values()), {}
        for z in zygotes:
            z.close()
        self._launcher.stop()
        self._cgroups.close()
        self._uids.release()
        shutil.rmtree(self._workroot, ignore_errors=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _zygote(self, profile: str) -> _ZygoteHandle:
        with self._lock:
            z = self._zygotes.get(profile)
            if z is not None and z.alive():
                return z
        # Start (or restart) outside the lock so other profiles keep serving meanwhile.
        fresh = _ZygoteHandle(
            profile,
            self.isolation,
            self._workroot,
            self._uids.uids,
            self._cgroups,
            self._launcher,
            self._mapping,
        )
        with self._lock:
            old = self._zygotes.get(profile)
            if old is not None and old.alive():
                fresh.close()
                return old
            self._zygotes[profile] = fresh
        if old is not None:
            old.close()
        return fresh

    def _run(
        self, code: str, prior: list[str], limits: Limits, profile: str, uid: int
    ) -> tuple[SandboxResult, Pending | None]:
        zygote = self._zygote(profile)
        job_id = f"j{os.getpid()}-{next(self._ids)}"
        nonce = secrets.token_hex(16)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        res_r, res_w = os.pipe2(os.O_CLOEXEC)
        status_ours, status_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        message = {
            "op": "job",
            "id": job_id,
            "uid": uid,
            "nonce": nonce,
            "code": code,
            "prior_cells": prior,
            "limits": {**limits.to_dict(), "cpu_s": limits.cpu_budget_s},
        }
        started = time.monotonic()
        try:
            zygote.submit(message, [out_w, err_w, res_w, status_theirs.fileno()])
        except OSError as exc:
            for fd in (out_r, err_r, res_r):  # the write ends are closed just below
                os.close(fd)
            status_ours.close()
            zygote.broken = True
            detail = f"could not reach the zygote: {exc!r}"
            return self._harness_error(detail, zygote, profile), None
        finally:
            for fd in (out_w, err_w, res_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            status_theirs.close()
        io = JobIO(
            zygote, limits, nonce.encode(), out_r, err_r, res_r, status_ours, started, profile
        )
        try:
            result = io.drive()
        finally:
            for fd in (out_r, err_r, res_r):
                os.close(fd)
        if io.exit is None and not zygote.broken:
            return result, Pending(status_ours, zygote)
        status_ours.close()
        return result, None

    @staticmethod
    def _harness_error(detail: str, zygote: _ZygoteHandle, profile: str) -> SandboxResult:
        return SandboxResult(
            status=Status.HARNESS_ERROR,
            detail=detail,
            profile=profile,
            protections=zygote.protections,
        )
