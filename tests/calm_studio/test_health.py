"""/healthz reports the database, Redis and the workers per queue, with 503 when one is down."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest
import redis
from django.urls import reverse

from tests.polling import wait_for

pytestmark = pytest.mark.django_db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of our own, so the test can stop it without touching the shared one."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (make test installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def answers() -> bool:
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    wait_for(answers, what=f"the private redis-server on port {port} to answer", timeout=20)
    yield url, proc
    proc.kill()
    proc.wait()


@pytest.mark.worker
def test_it_is_healthy_with_a_worker_on_every_queue(client_for, admin_user, live_worker):
    response = client_for(admin_user).get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    for queue in ("default", "sandbox", "gpu"):
        assert live_worker.worker_hostname in body["checks"]["workers"]["queues"][queue]["workers"]
    # The protections the worker's sandbox really has, for admins (probed once it is ready).

    def probed():
        body = client_for(admin_user).get(reverse("healthz")).json()
        mine = body["sandbox"][live_worker.worker_hostname]
        return mine if mine["ok"] is not None else None

    sandbox = wait_for(probed, what="the worker's sandbox probe", timeout=60, every=0.5)
    assert sandbox["ok"] is True
    assert {"seccomp", "sysv_ipc_denied", "wall_deadline"} <= set(sandbox["protections"])
    assert set(sandbox["minimum"]) <= set(sandbox["protections"])


@pytest.mark.worker
def test_it_tells_anonymous_callers_up_or_down_and_no_names(client, live_worker):
    response = client.get(reverse("healthz"))  # no login: monitors call it
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["workers"]["queues"]["sandbox"] == {"ok": True, "workers": 1}
    text = response.content.decode()
    assert live_worker.worker_hostname not in text and os.uname().nodename not in text
    assert "sandbox" not in body and "vendor" not in body["checks"]["database"]


def test_it_reports_redis_down_with_a_503(client, client_for, admin_user, settings, private_redis):
    url, proc = private_redis
    settings.REDIS_URL = url
    proc.kill()
    proc.wait()
    anonymous = client.get(reverse("healthz"))
    assert anonymous.status_code == 503
    assert anonymous.json()["checks"]["redis"] == {"ok": False}  # no exception text
    assert "Connection" not in anonymous.content.decode()
    response = client_for(admin_user).get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["redis"]["ok"] is False
    assert "Connection" in body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["ok"] is True


def test_it_reports_a_queue_without_workers(client, settings, private_redis):
    url, _ = private_redis
    settings.REDIS_URL = url  # a live Redis that no worker announces itself to
    response = client.get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["workers"]["queues"]["gpu"] == {"ok": False, "workers": 0}


def test_the_header_badge_shows_the_same_at_a_glance(client_for, reviewer, settings, private_redis):
    url, proc = private_redis
    settings.REDIS_URL = url
    proc.kill()
    proc.wait()
    html = client_for(reviewer).get(reverse("health-badge")).content.decode()
    assert 'class="badge ok" title="database reachable">DB<' in html
    assert 'class="badge bad"' in html and ">Redis<" in html


def test_the_header_badge_shows_a_dead_embedded_model_server(client_for, lead, tmp_path,
                                                              monkeypatch):  # fmt: skip
    from curation.engine.serving.supervisor import write_status

    status = tmp_path / "model-server.json"
    monkeypatch.setenv("CALM_MODEL_STATUS_FILE", str(status))
    monkeypatch.delenv("CALM_LOCAL_MODEL", raising=False)
    write_status(status, state="failed", name="embedded model", signal=11, restarts=3,
                 max_restarts=3)  # fmt: skip
    html = client_for(lead).get(reverse("health-badge")).content.decode()
    assert 'title="embedded model: the model server exited with signal 11 (SIGSEGV); not' in html
    assert ">model: failed<" in html
    import os

    write_status(status, state="ready", name="embedded model", pid=os.getpid())
    html = client_for(lead).get(reverse("health-badge")).content.decode()
    assert 'class="badge ok" title="embedded model: serving (smoke-tested)">model<' in html
    # A supervisor killed with the whole stack leaves "ready" behind: its pid tells.
    write_status(status, state="ready", name="embedded model", pid=2**22 + 1)
    html = client_for(lead).get(reverse("health-badge")).content.decode()
    assert ">model: gone<" in html
    monkeypatch.setenv("CALM_LOCAL_MODEL", "off")  # then there is no model to show
    assert ">model" not in client_for(lead).get(reverse("health-badge")).content.decode()


def test_reviewers_see_no_hostnames_or_error_text_in_the_badge(
    client_for, reviewer, lead, settings, private_redis, tmp_path, monkeypatch
):
    from curation.engine.serving.supervisor import write_status

    status = tmp_path / "model-server.json"
    monkeypatch.setenv("CALM_MODEL_STATUS_FILE", str(status))
    monkeypatch.delenv("CALM_LOCAL_MODEL", raising=False)
    write_status(status, state="failed", name="embedded model", signal=11, restarts=3,
                 max_restarts=3)  # fmt: skip
    url, proc = private_redis
    settings.REDIS_URL = url
    proc.kill()
    proc.wait()
    html = client_for(reviewer).get(reverse("health-badge")).content.decode()
    assert 'title="Redis unreachable">Redis<' in html and "Error" not in html
    assert 'title="embedded model: failed">model: failed<' in html and "signal 11" not in html
    html = client_for(lead).get(reverse("health-badge")).content.decode()
    assert "Error" in html and "signal 11" in html  # leads and admins see why
