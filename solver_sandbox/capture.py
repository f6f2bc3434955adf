"""Bounded capture of a job's output stream: the head and the tail are kept, the middle counted."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


class HeadTail:
    """Keep the first ``head`` and the last ``tail`` bytes of a stream; count what is dropped.

    The final objective is normally printed at the end, after any flood, so the tail matters
    as much as the head. Caps are on bytes, not characters.
    """

    def __init__(self, head: int, tail: int) -> None:
        self._head_cap = head
        self._tail_cap = tail
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data and self._tail_cap:
            self._tail += data
            if len(self._tail) > 2 * self._tail_cap:  # trim in batches, not on every chunk
                del self._tail[: len(self._tail) - self._tail_cap]

    @property
    def dropped(self) -> int:
        return max(0, self.total - len(self._head) - min(len(self._tail), self._tail_cap))

    def raw(self) -> tuple[bytes, bytes]:
        return bytes(self._head), bytes(self._tail[-self._tail_cap :] if self._tail_cap else b"")

    def text(self) -> str:
        head, tail = self.raw()
        if self.dropped:
            middle = f"\n[... {self.dropped} bytes truncated ...]\n".encode()
            data = head + middle + tail
        else:
            data = head + tail
        return _ANSI.sub("", data.decode("utf-8", errors="replace"))
