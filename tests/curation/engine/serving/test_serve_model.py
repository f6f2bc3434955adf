"""``python manage.py serve_model``: the embedded model server in the foreground, started the
way ``devstack`` starts it (one function builds the command line for both)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from curation.engine.serving import llama_server, local_model
from curation.engine.serving.status import read_status

REPO = Path(__file__).resolve().parents[4]


def test_without_a_build_it_says_how_to_make_one(monkeypatch, tmp_path):
    monkeypatch.setenv("CALM_LLAMA_SERVER_CACHE", str(tmp_path / "none"))
    monkeypatch.setattr(local_model, "is_prepared", lambda *a, **k: True)
    with pytest.raises(CommandError, match=r"llama-server is not built.*prepare_model"):
        call_command("serve_model", "--port", "8099")


def test_when_the_model_is_off_it_says_so(monkeypatch):
    monkeypatch.setenv("CALM_LOCAL_MODEL", "off")
    with pytest.raises(CommandError, match="CALM_LOCAL_MODEL=off"):
        call_command("serve_model")


def _reason() -> str | None:
    if llama_server.installed() is None:
        return "llama-server is not built here (prepare_model builds it)"
    if not local_model.is_prepared(local_model.get_model()):
        return "the embedded model is not prepared here (python manage.py prepare_model)"
    return None


@pytest.mark.skipif(_reason() is not None, reason=str(_reason()))
@pytest.mark.timeout(400)
def test_it_serves_the_real_model_until_it_is_stopped(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CALM_VAR_DIR": str(tmp_path), "CALM_LOCAL_MODEL_SLOTS": "2",
           "CALM_LOCAL_MODEL_CTX": "2048"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve_model", "--port", str(port)], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        first = proc.stdout.readline()  # the command line it runs, as devstack would
        assert "llama-server" in first and "--parallel 2" in first and f"--port {port}" in first
        status_file = tmp_path / "model-server.json"
        deadline = time.monotonic() + 300
        while (read_status(status_file) or {}).get("state") != "ready":
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        body = json.dumps({"prompt": [750, 912], "n_predict": 4, "return_tokens": True})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/completion", body.encode(),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            answer = json.loads(response.read())
        assert answer["tokens"] and all(isinstance(t, int) for t in answer["tokens"])
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Stopped." in out
    assert read_status(tmp_path / "model-server.json")["state"] == "stopped"
