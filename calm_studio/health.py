"""What /healthz and the page header report: the database, Redis, and workers per queue.

``system_health()`` is the full report (worker hostnames, error text, what each sandbox worker's
sandbox really gives): for admins and the logged-in header badge. ``public_health()`` is what
anonymous callers (monitors, load balancers) get: up/down and counts, no names, no messages.
"""

from __future__ import annotations

import time

import redis
from django.db import connection

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
    report["ok"] = all(check["ok"] for check in report["checks"].values())
    return report


def public_health(report: dict) -> dict:
    """``report`` without hostnames, error text or protections: ok flags and worker counts."""
    checks = report["checks"]
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
        },
    }
