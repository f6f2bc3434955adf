"""The pool's own threads: the launcher that starts zygotes, the reclaimer that frees slots."""

from __future__ import annotations

import contextlib
import os
import queue
import select
import socket
import subprocess
import threading
import time
from typing import Any

from .jobio import KILL_GRACE_S
from .protocol import recv_message


class Launcher:
    """Starts zygotes from one thread that lives as long as the pool.

    bwrap runs with ``--die-with-parent``, a parent-death signal, which the kernel sends when
    the *thread* that forked bwrap ends: a short-lived caller thread would take the zygote
    down with it.
    """

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="sandbox-launcher", daemon=True)
        self._thread.start()

    def popen(self, argv: list[str], env: dict[str, str], pass_fds: list[int]) -> subprocess.Popen:
        box: dict[str, Any] = {}
        done = threading.Event()
        self._requests.put((argv, env, pass_fds, box, done))
        done.wait()
        if "error" in box:
            raise box["error"]
        return box["proc"]

    def _loop(self) -> None:
        while True:
            item = self._requests.get()
            if item is None:
                return
            argv, env, pass_fds, box, done = item
            try:
                box["proc"] = subprocess.Popen(
                    argv,
                    env=env,
                    pass_fds=pass_fds,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            done.set()

    def stop(self) -> None:
        self._requests.put(None)
        self._thread.join(timeout=5)


class Pending:
    __slots__ = ("sock", "zygote")

    def __init__(self, sock: socket.socket, zygote: Any) -> None:
        self.sock = sock
        self.zygote = zygote


class Reclaimer:
    """Returns a slot to the free list when the zygote reports its last job reaped and swept.

    Callers get their answer as soon as the job has reported and closed its pipes (~2 ms before
    the kernel has torn the process down); this thread waits for the rest. A job that somehow
    keeps running is killed at its deadline, and a zygote that does not confirm is replaced.
    """

    def __init__(self, free: queue.SimpleQueue[int]) -> None:
        self._free = free
        self._lock = threading.Lock()
        self._new: list[tuple[Pending, int, float]] = []
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread: threading.Thread | None = None
        self._stopped = False

    def watch(self, pending: Pending, uid: int, deadline: float) -> None:
        with self._lock:
            self._new.append((pending, uid, deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="sandbox-reclaimer", daemon=True
                )
                self._thread.start()
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        # fd -> [pending, uid, deadline, kill_sent]
        watched: dict[int, list[Any]] = {}
        while not self._stopped:
            with self._lock:
                new, self._new = self._new, []
            for pending, uid, deadline in new:
                fd = pending.sock.fileno()
                watched[fd] = [pending, uid, deadline, False]
                poller.register(fd, select.POLLIN)
            now = time.monotonic()
            for fd, entry in list(watched.items()):
                if now < entry[2]:
                    continue
                if not entry[3]:
                    entry[3] = True
                    entry[2] = now + KILL_GRACE_S
                    with contextlib.suppress(OSError):
                        entry[0].sock.send(b"K")
                else:
                    entry[0].zygote.broken = True  # replaced on the next job
                    self._release(poller, watched, fd)
            timeout = min((e[2] for e in watched.values()), default=now + 60) - now
            for fd, _events in poller.poll(max(0.0, timeout) * 1000 + 1):
                if fd == self._wake_r:
                    try:
                        while os.read(self._wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                entry = watched.get(fd)
                if entry is None:
                    continue
                try:
                    got = recv_message(entry[0].sock)
                except (OSError, EOFError, ValueError):
                    got = None
                if got is None:
                    entry[0].zygote.broken = True
                    self._release(poller, watched, fd)
                    continue
                message, fds = got
                for extra in fds:
                    os.close(extra)
                if message.get("event") == "exit":
                    self._release(poller, watched, fd)
        for fd in list(watched):
            self._release(poller, watched, fd)

    def _release(self, poller: select.poll, watched: dict[int, list[Any]], fd: int) -> None:
        entry = watched.pop(fd)
        poller.unregister(fd)
        entry[0].sock.close()
        self._free.put(entry[1])
