"""The embedded model server as the app runs it: its command line (or why it does not start)
and its supervisor. ``devstack`` and ``serve_model`` both start it through here, so the two run
it exactly alike. Plain Python, no Django.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from ..env import EnvError, env_int
from . import local_model
from .supervisor import Supervisor

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
