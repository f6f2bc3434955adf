"""The embedded model server as the app runs it: its command line (or why it does not start)
and its supervisor. ``devstack`` and ``serve_model`` both start it through here, so the two run
it exactly alike. Plain Python, no Django.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable

from ..env import EnvError, env_int
from . import local_model
from .supervisor import Supervisor, write_status

MODEL_READY_TIMEOUT_S = 300.0
HINT = (
    "`make run` prepares it by default (or run `python manage.py prepare_model`); "
    "CALM_LOCAL_MODEL=off disables it."
)


def embedded_command(say: Callable[[str], None], port: int | None = None) -> list[str] | None:
    """The model server's argv, or None (after one line through ``say`` saying why and how
    to enable it)."""
    if local_model.selected_model_name() is None:
        say("Embedded model: off (CALM_LOCAL_MODEL=off).")
        return None
    try:
        spec = local_model.get_model()
    except EnvError as exc:
        say(f"Embedded model: not starting: {exc}.")
        return None
    if not local_model.is_prepared(spec):
        say(f"Embedded model: {spec.name} is not prepared, not starting. {HINT}")
        return None
    build = local_model.server_build()
    if build is None:
        say(f"Embedded model: llama-server is not built, not starting. {HINT}")
        return None
    port = port or local_model.port()
    with socket.socket() as probe:
        if probe.connect_ex((local_model.DEFAULT_HOST, port)) == 0:
            say(
                f"Embedded model: port {port} is already in use, not starting "
                "(CALM_LOCAL_MODEL_PORT picks another)."
            )
            return None
    return local_model.command_for(spec, build=build, port_=port)


def supervise_embedded(
    argv: list[str],
    *,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    env: dict | None = None,
    port: int | None = None,
) -> Supervisor:
    """Start the embedded model under its supervisor; say when it is ready or why not."""
    spec = local_model.get_model()
    url = local_model.base_url(port_=port)
    started = time.monotonic()
    supervisor = Supervisor(
        argv, base_url=url, model=spec.name, status_file=local_model.status_path(),
        name=f"embedded model ({spec.name})",
        max_restarts=env_int("CALM_MODEL_MAX_RESTARTS", 3),
        ready_timeout_s=MODEL_READY_TIMEOUT_S, on_output=lambda line: say(f" model | {line}"),
        env=env,
    ).start()  # fmt: skip

    def watch() -> None:
        announced = ""
        while supervisor.state not in ("failed", "stopped"):
            state = supervisor.state
            if state != announced:
                announced = state
                if state == "ready":
                    say(
                        f" model | {spec.name} is serving at {url} (smoke-tested; ready in "
                        f"{time.monotonic() - started:.1f} s)"
                    )
                elif state == "restarting":
                    warn(" model | the model server died; restarting it")
            time.sleep(0.5)
        if supervisor.state == "failed":
            warn(
                " model | the model server keeps dying; the app runs without it (see the "
                "header badge, and `python manage.py prepare_model` for the build)"
            )

    threading.Thread(target=watch, name="model-watch", daemon=True).start()
    return supervisor


def needs_preparing() -> bool:
    """Whether the selected embedded model (not off) still lacks its file or its llama-server
    build: what ``prepare_model`` makes."""
    if local_model.selected_model_name() is None:
        return False
    try:
        spec = local_model.get_model()
    except EnvError:
        return False  # embedded_command says why
    return not local_model.is_prepared(spec) or local_model.server_build() is None


class Preparation:
    """``prepare_model`` run beside the app instead of before it, so that the first page does
    not wait for llama.cpp to compile (minutes on a fresh machine): its output goes through
    ``say``, the status file says "preparing" (the header badge and a job that needs the model
    read it), and ``on_ready()`` runs when it succeeded; a failure is written as "failed" with
    its exit code, and the app goes on without the model."""

    def __init__(
        self,
        argv: list[str],
        *,
        on_ready: Callable[[], None],
        say: Callable[[str], None],
        warn: Callable[[str], None],
        env: dict | None = None,
    ) -> None:
        self.argv, self.on_ready, self.say, self.warn, self.env = argv, on_ready, say, warn, env
        self.proc = None
        self.returncode: int | None = None
        self.done = threading.Event()
        self.stopping = False

    def start(self) -> Preparation:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env,
            start_new_session=True, text=True, errors="replace",
        )  # fmt: skip
        write_status(local_model.status_path(), state="preparing", name="embedded model",
                     pid=self.proc.pid, started_at=time.time())  # fmt: skip
        threading.Thread(target=self._follow, name="model-prepare", daemon=True).start()
        return self

    def _follow(self) -> None:
        for line in self.proc.stdout:
            self.say(f"prepare | {line.rstrip()}")
        self.returncode = self.proc.wait()
        try:
            if self.stopping:
                pass  # stopped with the app: not a failure
            elif self.returncode == 0:
                self.on_ready()
            else:
                detail = (
                    f"prepare_model failed (exit {self.returncode}): its output is above in "
                    "the make run log; `python manage.py prepare_model` retries"
                )
                write_status(local_model.status_path(), state="failed", name="embedded model",
                             detail=detail, restarts=0, max_restarts=0)  # fmt: skip
                self.warn(f" model | {detail}; the app runs without the model")
        finally:
            self.done.set()

    def stop(self) -> None:
        """Stop a preparation still running (Ctrl-C): its whole process group (the compiler);
        the status file says "off" again (nothing serves, nothing is being prepared)."""
        self.stopping = True
        if self.proc is None:
            return
        if self.proc.poll() is not None:  # finished: let its on_ready() end before stopping
            self.done.wait(timeout=30)
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:
            pass
        self.done.wait(timeout=10)
        write_status(local_model.status_path(), state="off", name="embedded model")
