"""Supervise a model server process: start it, prove it generates, notice when it dies, restart
it a bounded number of times with backoff, and say all of this in a status file.

The status file (JSON, written atomically) is what the rest of the app reads: the header badge
and /healthz show the state, and the engine's HTTP backend, when a request finds no server,
names how the server died (``curation.engine.serving.status``) instead of a bare connection
error. States: ``starting`` → ``ready``; on an exit ``restarting`` (then ``starting``) or, past
the restart cap, ``failed``; ``stopped`` after a clean stop. Plain Python, no Django.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import llama_build
from .local_model import ModelError, wait_ready

STOP_GRACE_S = 10.0


def write_status(path: Path, **fields: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps({**fields, "updated_at": time.time()}))
    os.replace(tmp, path)


def smoke_generate(base_url: str, model: str, timeout_s: float = 120.0) -> dict:
    """A few tokens through the server's completions API; {ok, tokens, seconds} or {ok, error}."""
    root = base_url.rstrip("/")
    url = (root if root.endswith("/v1") else root + "/v1") + "/completions"
    payload = {
        "model": model,
        "prompt": llama_build.SMOKE_PROMPT,
        "max_tokens": llama_build.SMOKE_TOKENS,
        "temperature": 0,
    }
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})  # noqa: S310
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            data = json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, OSError) as exc:
        return {"ok": False, "error": f"the smoke generation failed: {exc}"}
    seconds = time.monotonic() - started
    try:
        tokens = int((data.get("usage") or {}).get("completion_tokens") or 0)
        text = data["choices"][0].get("text") or ""
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        return {"ok": False, "error": f"the smoke generation answered {str(data)[:200]}"}
    if not tokens and not text:
        return {"ok": False, "error": "the smoke generation returned no tokens"}
    return {"ok": True, "tokens": tokens or None, "seconds": round(seconds, 2)}


class Supervisor:
    """Run ``argv`` as a supervised server (see the module docstring).

    ``max_restarts`` restarts at most, waiting ``backoff_s`` × 2^(n-1) (capped) before the nth;
    a server that stayed up ``stable_after_s`` earns its restarts back. ``on_output(line)``
    gets every line it prints."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        base_url: str,
        model: str,
        status_file: Path,
        name: str = "embedded model",
        max_restarts: int = 3,
        backoff_s: float = 2.0,
        backoff_max_s: float = 60.0,
        ready_timeout_s: float = 300.0,
        stable_after_s: float = 600.0,
        smoke: bool = True,
        on_output: Callable[[str], None] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.base_url, self.model, self.status_file, self.name = base_url, model, status_file, name
        self.max_restarts, self.backoff_s, self.backoff_max_s = (
            max_restarts,
            backoff_s,
            backoff_max_s,
        )
        self.ready_timeout_s, self.stable_after_s, self.smoke = (
            ready_timeout_s, stable_after_s, smoke,
        )  # fmt: skip
        self.on_output = on_output or (lambda line: None)
        self.env = env
        self.restarts = 0
        self.proc: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-supervisor", daemon=True)
        self.state = "starting"

    # --- control ---------------------------------------------------------------------------

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            _kill_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait()
        self._thread.join(timeout=STOP_GRACE_S + 5)
        self._status("stopped")

    def wait_for(self, *states: str, timeout: float = 60.0) -> str:
        """Block until the state is one of ``states`` (tests, the bench); the state reached."""
        deadline = time.monotonic() + timeout
        while self.state not in states and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.state

    # --- the loop --------------------------------------------------------------------------

    def _status(self, state: str, **extra: Any) -> None:
        # The file first: whoever sees ``state`` change (``wait_for``) finds the file saying so.
        write_status(
            self.status_file, state=state, name=self.name, base_url=self.base_url,
            pid=self.proc.pid if self.proc else None, restarts=self.restarts,
            max_restarts=self.max_restarts, **extra,
        )  # fmt: skip
        self.state = state

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            detail = self._serve_once()
            if self._stop.is_set():
                return
            code = self.proc.returncode if self.proc else None
            exit_fields = {
                "exit_code": code if code is not None and code >= 0 else None,
                "signal": -code if code is not None and code < 0 else None,
                "detail": detail,
            }
            if time.monotonic() - started >= self.stable_after_s:
                self.restarts = 0
            if self.restarts >= self.max_restarts:
                self._status("failed", **exit_fields)
                return
            wait = min(self.backoff_max_s, self.backoff_s * 2**self.restarts)
            self._status("restarting", retry_in_s=wait, **exit_fields)
            if self._stop.wait(wait):
                return
            self.restarts += 1

    def _serve_once(self) -> str:
        """Start the server, prove it, wait for it to exit; the reason it is not serving."""
        self._status("starting")
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
            start_new_session=True,
        )  # fmt: skip
        relay = threading.Thread(target=self._relay, args=(self.proc,), daemon=True)
        relay.start()
        alive = lambda: self.proc.poll() is None  # noqa: E731
        try:
            wait_ready(self.base_url, self.ready_timeout_s, alive=alive)
        except (TimeoutError, ModelError) as exc:
            if alive():
                _kill_group(self.proc, signal.SIGKILL)
            self.proc.wait()
            return str(exc)
        if self.smoke:
            result = smoke_generate(self.base_url, self.model)
            if not result["ok"]:
                if alive():  # a server that cannot generate is as good as dead
                    _kill_group(self.proc, signal.SIGKILL)
                self.proc.wait()
                return result["error"]
            self._status("ready", smoke=result)
        else:
            self._status("ready")
        self.proc.wait()
        relay.join(timeout=2)
        return "the server exited while serving"

    def _relay(self, proc: subprocess.Popen) -> None:
        for raw in iter(proc.stdout.readline, b""):
            self.on_output(raw.decode(errors="replace").rstrip("\n"))


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
