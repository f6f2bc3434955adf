"""One job's pipes, deadline and caps, from submission to the zygote's exit report."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time
from typing import Any

from .capture import HeadTail
from .limits import Limits
from .protocol import FrameError, parse_frames, recv_message
from .result import SandboxResult, Status
from .verdict import build_result

MAX_CHANNEL = 8 * 1024 * 1024  # result-channel bytes kept; more is tampering: killed
KILL_GRACE_S = 5.0  # how long the zygote may take to confirm a kill before we give up on it


class JobIO:
    """One job's pipes, deadline and caps, from submission to the zygote's exit report."""

    def __init__(
        self,
        zygote: Any,
        limits: Limits,
        nonce: bytes,
        out_r: int,
        err_r: int,
        res_r: int,
        status: socket.socket,
        started: float,
        profile: str,
    ) -> None:
        self.zygote = zygote
        self.limits = limits
        self.nonce = nonce
        self.started = started
        self.profile = profile
        self.status = status
        self.out = HeadTail(limits.keep_head_bytes, limits.keep_tail_bytes)
        self.err = HeadTail(limits.keep_head_bytes, limits.keep_tail_bytes)
        self.channel = bytearray()
        self.channel_overflow = False
        self.streams = {out_r: self.out, err_r: self.err, res_r: None}
        self.kill_reason: Status | None = None
        self.kill_detail = ""
        self.kill_sent_at: float | None = None
        self.exit: dict[str, Any] | None = None

    def _kill(self, reason: Status, detail: str) -> None:
        if self.kill_reason is None:
            self.kill_reason = reason
            self.kill_detail = detail
            self.kill_sent_at = time.monotonic()
            with contextlib.suppress(OSError):
                self.status.send(b"K")

    def drive(self) -> SandboxResult:
        poller = select.poll()
        for fd in self.streams:
            poller.register(fd, select.POLLIN)
        poller.register(self.status.fileno(), select.POLLIN)
        open_fds = set(self.streams)
        deadline = self.started + self.limits.timeout_s
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            if not open_fds and self.exit is None and self._reported():
                break  # the harness reported and closed its pipes: the process is exiting
            if self.exit is not None:
                if not open_fds or now >= (drain_until or now):
                    break
                wait = drain_until - now
            elif self.kill_sent_at is not None:
                if now - self.kill_sent_at > KILL_GRACE_S:
                    self.zygote.broken = True  # restart it on the next job
                    return self._result(harness_detail="the zygote did not confirm a kill")
                wait = self.kill_sent_at + KILL_GRACE_S - now
            else:
                if now >= deadline:
                    self._kill(
                        Status.TIMEOUT, f"wall-clock limit of {self.limits.timeout_s:g} s reached"
                    )
                    continue
                wait = deadline - now
            for fd, _events in poller.poll(max(0, wait) * 1000 + 1):
                if fd == self.status.fileno():
                    self._read_status(poller)
                    if self.exit is not None:
                        # All of the job's processes are dead; what is left in the pipes is
                        # buffered data, normally read within a millisecond.
                        drain_until = time.monotonic() + 0.5
                    continue
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    continue
                sink = self.streams[fd]
                if sink is None:
                    if len(self.channel) + len(data) > MAX_CHANNEL:
                        self.channel_overflow = True
                        poller.unregister(fd)  # nothing more is read from a flooded channel
                        open_fds.discard(fd)
                        self._kill(
                            Status.HARNESS_ERROR,
                            f"result channel flooded past {MAX_CHANNEL} bytes: killed",
                        )
                    else:
                        self.channel += data
                    continue
                sink.feed(data)
                if self.out.total + self.err.total > self.limits.output_limit_bytes:
                    self._kill(
                        Status.OUTPUT_LIMIT, f"output passed {self.limits.output_limit_bytes} bytes"
                    )
        return self._result()

    def _reported(self) -> bool:
        """True when the result channel holds exactly our frames, ending in a final report."""
        try:
            frames = parse_frames(bytes(self.channel), self.nonce)
        except FrameError:
            return False
        return bool(frames) and frames[-1][0] == b"R" and not self.channel_overflow

    def _read_status(self, poller: select.poll) -> None:
        try:
            got = recv_message(self.status)
        except (OSError, EOFError, ValueError):
            got = None
        if got is None:
            poller.unregister(self.status.fileno())
            if self.exit is None:
                self.exit = {"lost": True}
            return
        message, fds = got
        for fd in fds:
            os.close(fd)
        if message.get("event") == "exit":
            self.exit = message
            poller.unregister(self.status.fileno())

    def _result(self, harness_detail: str = "") -> SandboxResult:
        return build_result(self, harness_detail)
