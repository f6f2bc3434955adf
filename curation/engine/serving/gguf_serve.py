"""Serve a GGUF (a converted checkpoint) with llama.cpp's own server, as a process of its own.

The server gets the embedded model's command line (``local_model.server_command``: slots,
continuous batching, a prompt cache per slot) and its supervisor (``supervisor.Supervisor``:
smoke-tested before it counts as ready, restarted with backoff when it dies, its state in a
status file). Unlike the embedded model, which lives and dies with ``devstack``, a served
checkpoint is started by a worker's job and must outlive it, so the supervisor runs in a
detached process of its own (a new session):

    python -m curation.engine.serving.gguf_supervise --status-file S.json --alias NAME \
        -- <the llama-server argv>

``start`` launches that process on a free port and returns at once; ``wait_served`` follows
the status file until the server is ready (or failed, with the reason); ``stop`` ends it.
Plain Python, no Django.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from . import llama_server, local_model

_REPO_ROOT = Path(__file__).resolve().parents[3]
READY_TIMEOUT_S = 300.0


class ServeError(RuntimeError):
    """The GGUF could not be served; the message says why."""


@dataclass
class Served:
    """A started server: where it answers, and the process that supervises it."""

    base_url: str  # OpenAI-compatible, ends in /v1
    port: int
    alias: str  # the model name requests send
    pid: int  # the supervisor process (stop it to stop the server)
    status_file: str
    log_file: str
    argv: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def free_port(host: str = local_model.DEFAULT_HOST) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def command(
    build: llama_server.ServerBuild,
    gguf: Path,
    *,
    port: int,
    alias: str,
    n_ctx: int | None = None,
    slots: int | None = None,
) -> list[str]:
    """The server argv: the embedded model's settings (threads, slots, context per slot from
    the environment) unless given."""
    return local_model.server_command(
        build.server, gguf, host=local_model.DEFAULT_HOST, port=port,
        n_threads=local_model.n_threads(), n_ctx=n_ctx or local_model.n_ctx(),
        slots=slots or local_model.n_slots(), alias=alias,
    )  # fmt: skip


def start(
    gguf: Path,
    *,
    alias: str,
    status_file: Path,
    log_file: Path,
    build: llama_server.ServerBuild | None = None,
    port: int | None = None,
    n_ctx: int | None = None,
    slots: int | None = None,
    python: str = sys.executable,
) -> Served:
    """Launch the detached supervisor process for ``gguf`` (see the module docstring)."""
    build = build or llama_server.installed()
    if build is None:
        raise ServeError(
            "llama-server is not built here: run `python manage.py prepare_model` first"
        )
    if not Path(gguf).is_file():
        raise ServeError(f"{gguf} is not there")
    port = port or free_port()
    argv = command(build, Path(gguf), port=port, alias=alias, n_ctx=n_ctx, slots=slots)
    status_file, log_file = Path(status_file), Path(log_file)
    status_file.parent.mkdir(parents=True, exist_ok=True)
    status_file.unlink(missing_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [python, "-m", "curation.engine.serving.gguf_supervise", "--status-file",
             str(status_file), "--alias", alias, "--", *argv],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=_REPO_ROOT,
            start_new_session=True,
        )  # fmt: skip
    return Served(
        base_url=local_model.base_url(port_=port), port=port, alias=alias, pid=proc.pid,
        status_file=str(status_file), log_file=str(log_file), argv=argv,
    )  # fmt: skip


def read_status(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie child of ours has exited
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def wait_served(
    served: Served,
    *,
    timeout: float = READY_TIMEOUT_S,
    on_state: Callable[[str], None] | None = None,
    interval: float = 0.25,
) -> dict:
    """Follow the status file until the server is ready; its status, or ServeError with why
    it is not (failed, the supervisor gone, or not ready in ``timeout``)."""
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        status = read_status(Path(served.status_file))
        state = status.get("state", "")
        if state != seen and on_state:
            on_state(state)
        seen = state
        if state == "ready":
            return status
        if state in ("failed", "stopped"):
            raise ServeError(f"the server {state}: {status.get('detail') or _log_tail(served)}")
        if not _alive(served.pid):
            raise ServeError(f"the server's supervisor exited: {_log_tail(served)}")
        if time.monotonic() > deadline:
            raise ServeError(f"the server was not ready in {timeout:.0f} s (state {state!r})")
        time.sleep(interval)


def _log_tail(served: Served, lines: int = 8) -> str:
    try:
        text = Path(served.log_file).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"


def running(pid: int) -> bool:
    """Whether ``pid`` is a served checkpoint's supervisor still running (not merely a live
    pid: after a restart the number may belong to another process)."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (not Linux): the pid is all there is
    return b"curation.engine.serving.gguf_supervise" in cmdline


def stop(pid: int, *, grace_s: float = 15.0) -> bool:
    """SIGTERM the supervisor's process group (it stops the server); SIGKILL after
    ``grace_s``. False when it was not running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + grace_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    return True
