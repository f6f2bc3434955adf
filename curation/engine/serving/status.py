"""The status file a model-server supervisor writes, read by the engine so that a request that
finds no server can say how the server died (plain JSON; no Django, no import of the
supervisor). Written by ``curation.engine.serving.supervisor``."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

DOWN_STATES = {"exited", "restarting", "failed"}


def read_status(path: str | Path) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def exit_description(status: dict[str, Any]) -> str:
    """ "exited with signal 11 (SIGSEGV)" / "exited with code 1" / "stopped"."""
    sig = status.get("signal")
    if isinstance(sig, int) and sig > 0:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "unknown signal"
        return f"exited with signal {sig} ({name})"
    code = status.get("exit_code")
    if isinstance(code, int):
        return f"exited with code {code}"
    return "stopped"


def server_down_message(path: str | Path) -> str | None:
    """One sentence for a job's error when the supervised server is down, else None."""
    status = read_status(path)
    if not status or status.get("state") not in DOWN_STATES:
        if status and status.get("state") == "starting":
            return f"the {status.get('name') or 'model'} server is starting, not answering yet"
        if status and status.get("state") == "preparing":
            return (
                f"the {status.get('name') or 'model'} is still being prepared (the first "
                "`make run` compiles llama.cpp: minutes); try again when the header badge says "
                "it serves"
            )
        return None
    name = status.get("name") or "model"
    text = f"the {name} server {exit_description(status)}"
    restarts, most = status.get("restarts", 0), status.get("max_restarts", 0)
    if status["state"] == "restarting":
        text += f"; restarting it (restart {restarts + 1} of {most})"
    elif status["state"] == "failed":
        text += f"; it was restarted {restarts} time(s) and is not running"
    detail = status.get("detail")
    return f"{text}: {detail}" if detail else text
