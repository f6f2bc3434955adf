"""Workers announce themselves in Redis so /healthz can list them per queue without a broadcast.

Each worker's main process writes ``calm:worker:<hostname>`` (its queues, pid, time) every
WORKER_HEARTBEAT_S with a TTL of three beats; a dead worker's key simply expires. Reading a few
keys is a millisecond, where ``inspect().ping()`` waits a whole timeout for silent workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time

import redis
from celery import signals
from django.conf import settings

from solver_sandbox.tasks import worker_sandbox_report

KEY_PREFIX = "calm:worker:"
_state: dict = {"stop": None, "hostname": None, "queues": None}


def redis_client(url: str | None = None, timeout: float = 1.0) -> redis.Redis:
    return redis.Redis.from_url(
        url or settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout
    )


def _beat(stop: threading.Event) -> None:
    interval = settings.WORKER_HEARTBEAT_S
    client = redis_client()
    while not stop.is_set():
        # Read each beat: a worker may stop consuming a queue after set-up (the sandbox queue,
        # when the sandbox refuses to start on this host).
        queues = sorted(_state["queues"].consume_from.keys()) if _state["queues"] else []
        payload = {"queues": queues, "pid": os.getpid(), "at": time.time()}
        sandbox = worker_sandbox_report()
        if sandbox is not None:  # what this worker's sandbox really gives (admins' /healthz)
            payload["sandbox"] = sandbox
        # Redis down: /healthz shows it; keep trying.
        with contextlib.suppress(redis.RedisError):
            client.set(KEY_PREFIX + _state["hostname"], json.dumps(payload), ex=int(interval * 3))
        stop.wait(interval)


@signals.celeryd_after_setup.connect
def _remember_queues(sender, instance, **kwargs) -> None:
    _state["hostname"] = sender
    _state["queues"] = instance.app.amqp.queues


@signals.worker_ready.connect
def _start_heartbeat(sender=None, **kwargs) -> None:
    if not _state["hostname"]:
        return
    stop = threading.Event()
    _state["stop"] = stop
    threading.Thread(target=_beat, args=(stop,), name="calm-presence", daemon=True).start()


@signals.worker_shutdown.connect
def _stop_heartbeat(sender=None, **kwargs) -> None:
    if _state["stop"] is not None:
        _state["stop"].set()
        with contextlib.suppress(redis.RedisError):
            redis_client().delete(KEY_PREFIX + _state["hostname"])


def live_workers(client: redis.Redis) -> dict[str, dict]:
    """hostname -> presence payload, for every worker whose heartbeat has not expired."""
    keys = list(client.scan_iter(match=KEY_PREFIX + "*", count=100))
    if not keys:
        return {}
    values = client.mget(keys)
    workers = {}
    for key, value in zip(keys, values, strict=True):
        if value is None:
            continue
        name = key.decode() if isinstance(key, bytes) else key
        workers[name[len(KEY_PREFIX) :]] = json.loads(value)
    return workers
