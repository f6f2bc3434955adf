"""What /healthz and the page header report: the database, Redis, workers per queue, and the
embedded model server's supervisor state (when the embedded model is on).

``system_health()`` is the full report (worker hostnames, error text, what each sandbox worker's
sandbox really gives): for admins and the logged-in header badge. ``public_health()`` is what
anonymous callers (monitors, load balancers) get: up/down and counts, no names, no messages.
"""

from __future__ import annotations

import os
import time

import redis
from django.db import connection

from curation.engine.serving import local_model

from .queues import ALL_QUEUES
from .worker_presence import live_workers, redis_client


def _timed(check):
    start = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as exc:  # a health check reports every failure instead of raising
        detail = {"error": f"{type(exc).__name__}: {exc}"}
        ok = False
    return ok, detail, round((time.perf_counter() - start) * 1000, 1)


def _database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def system_health() -> dict:
    """A JSON-able report; ``ok`` is False when the database, Redis or any queue is down."""
    report: dict = {"checks": {}}
    ok, detail, ms = _timed(_database)
    report["checks"]["database"] = {"ok": ok, "ms": ms, **detail}

    client = redis_client()
    ok, detail, ms = _timed(lambda: {"pong": bool(client.ping())})
    report["checks"]["redis"] = {"ok": ok, "ms": ms, **detail}

    workers: dict[str, dict] = {}
    if ok:
        try:
            workers = live_workers(client)
        except redis.RedisError:
            workers = {}
    per_queue = {
        queue: sorted(name for name, w in workers.items() if queue in w.get("queues", []))
        for queue in ALL_QUEUES
    }
    report["checks"]["workers"] = {
        "ok": all(per_queue.values()),
        "queues": {q: {"ok": bool(names), "workers": names} for q, names in per_queue.items()},
    }
    # Each sandbox-capable worker's protections, or why it refused to take sandbox work.
    report["sandbox"] = {
        name: w["sandbox"] for name, w in sorted(workers.items()) if w.get("sandbox") is not None
    }
    model = _embedded_model()
    # The embedded model is optional: its state is shown, but the app is up without it.
    report["ok"] = all(check["ok"] for check in report["checks"].values())
    if model is not None:
        report["checks"]["model"] = model
    return report


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def _embedded_model() -> dict | None:
    """The supervisor's view of the embedded model server, or None when it is off or was
    never started by ``make run``."""
    if local_model.selected_model_name() is None:
        return None
    from curation.engine.serving.status import exit_description, read_status

    status = read_status(local_model.status_path())
    if not status or status.get("state") in ("off", None):
        return None
    state = status["state"]
    if state in ("preparing", "starting", "ready") and not _alive(status.get("pid")):
        state = "gone"  # the supervisor itself was killed: nobody is serving
    if state in ("exited", "restarting", "failed"):
        summary = f"the model server {exit_description(status)}"
        summary += "; restarting" if state == "restarting" else "; not running"
    elif state == "ready":
        summary = "serving (smoke-tested)"
    elif state == "preparing":
        summary = "being prepared beside the app (the first time, llama.cpp compiles: minutes)"
    elif state == "gone":
        summary = "the model server and its supervisor are gone (restart make run)"
    else:
        summary = state
    return {"ok": state == "ready", "optional": True, "state": state, "summary": summary,
            "restarts": status.get("restarts", 0)}  # fmt: skip


def public_health(report: dict) -> dict:
    """``report`` without hostnames, error text or protections: ok flags and worker counts."""
    checks = report["checks"]
    public = {}
    if "model" in checks:  # its state word only; the summary can name a signal or a path
        public["model"] = {"ok": checks["model"]["ok"], "state": checks["model"]["state"]}
    return {
        "ok": report["ok"],
        "checks": {
            "database": {"ok": checks["database"]["ok"]},
            "redis": {"ok": checks["redis"]["ok"]},
            "workers": {
                "ok": checks["workers"]["ok"],
                "queues": {
                    q: {"ok": v["ok"], "workers": len(v["workers"])}
                    for q, v in checks["workers"]["queues"].items()
                },
            },
            **public,
        },
    }
