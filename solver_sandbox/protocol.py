"""Framing on the sockets and pipes between supervisor, zygote and job.

Control messages (supervisor <-> zygote) are length-prefixed JSON on a Unix stream socket, with
file descriptors riding along via SCM_RIGHTS. Result frames (job -> supervisor) carry a per-job
random nonce and a length so that anything the job writes into the channel by itself shows up
as a framing error instead of a forged result.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

_LEN = struct.Struct("!I")
MAX_MESSAGE = 64 * 1024 * 1024
MAX_FDS = 8


def send_message(sock: socket.socket, message: dict[str, Any], fds: list[int] = ()) -> None:  # type: ignore[assignment]
    payload = json.dumps(message, separators=(",", ":")).encode()
    header = _LEN.pack(len(payload))
    if fds:
        socket.send_fds(sock, [header], list(fds))
    else:
        sock.sendall(header)
    sock.sendall(payload)


def recv_message(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """Read one message; None on a clean EOF."""
    header, fds, _flags, _addr = socket.recv_fds(sock, _LEN.size, MAX_FDS)
    if not header:
        return None
    while len(header) < _LEN.size:  # a stream socket may split even a 4-byte header
        more = sock.recv(_LEN.size - len(header))
        if not more:
            raise EOFError("truncated header")
        header += more
    (length,) = _LEN.unpack(header)
    if length > MAX_MESSAGE:
        raise ValueError("message too large")
    payload = bytearray()
    while len(payload) < length:
        chunk = sock.recv(min(1 << 20, length - len(payload)))
        if not chunk:
            raise EOFError("truncated message")
        payload += chunk
    return json.loads(payload), fds


def frame(nonce: bytes, kind: bytes, payload: bytes) -> bytes:
    """A result-channel frame: ``<nonce> <kind> <length>\\n<payload>``."""
    return b"%s %s %d\n" % (nonce, kind, len(payload)) + payload


class FrameError(ValueError):
    """The result channel held something that is not a frame of ours."""


def parse_frames(data: bytes, nonce: bytes) -> list[tuple[bytes, dict[str, Any]]]:
    """Split the whole channel into (kind, message) pairs; any stray byte is a FrameError."""
    out = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos, pos + 64)
        if end < 0:
            raise FrameError("bad frame header")
        parts = data[pos:end].split(b" ")
        if len(parts) != 3 or parts[0] != nonce or parts[1] not in (b"S", b"R"):
            raise FrameError("foreign bytes in the result channel")
        try:
            length = int(parts[2])
        except ValueError as exc:
            raise FrameError("bad frame length") from exc
        body = data[end + 1 : end + 1 + length]
        if len(body) != length:
            raise FrameError("truncated frame")
        try:
            message = json.loads(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
            raise FrameError("frame is not JSON") from exc
        if not isinstance(message, dict):
            raise FrameError("frame is not an object")
        out.append((parts[1], message))
        pos = end + 1 + length
    return out
