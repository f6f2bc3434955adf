"""``make run`` prepares the embedded model beside the app (``devstack --prepare-model``), so the
first page never waits for llama.cpp to compile: the preparation is a real child process here
(a short Python program stands in for ``prepare_model``), its state is in the status file the
header badge and the jobs read, and the model starts only when it succeeded."""

from __future__ import annotations

import os
import sys

import pytest

from curation.engine.serving import local_model
from curation.engine.serving.embedded import Preparation
from curation.engine.serving.status import read_status, server_down_message
from tests.polling import wait_for


@pytest.fixture
def status_file(tmp_path, monkeypatch):
    path = tmp_path / "model-server.json"
    monkeypatch.setenv("CALM_MODEL_STATUS_FILE", str(path))
    return path


def prepare(code: str, **kwargs) -> tuple[Preparation, list[str], list[str], list[str]]:
    said, warned, ready = [], [], []
    preparation = Preparation(
        [sys.executable, "-c", code], on_ready=lambda: ready.append("ready"),
        say=said.append, warn=warned.append, **kwargs,
    ).start()  # fmt: skip
    return preparation, said, warned, ready


def test_while_it_runs_the_status_says_preparing_and_jobs_are_told_to_wait(status_file):
    preparation, said, _, ready = prepare(
        "import sys, time; print('building llama.cpp', flush=True); time.sleep(600)"
    )
    try:
        wait_for(lambda: "prepare | building llama.cpp" in said, what="its output relayed",
                 timeout=30)  # fmt: skip
        status = read_status(status_file)
        assert status["state"] == "preparing" and status["pid"] == preparation.proc.pid
        assert "still being prepared" in server_down_message(status_file)
        assert not ready
    finally:
        preparation.stop()


def test_the_model_starts_when_the_preparation_succeeds(status_file):
    preparation, said, warned, ready = prepare("print('Model qwen ready (1.0 s)')")
    wait_for(preparation.done.is_set, what="the preparation to end", timeout=30)
    assert ready == ["ready"] and not warned
    assert said == ["prepare | Model qwen ready (1.0 s)"]


def test_a_failed_preparation_is_recorded_and_the_app_goes_on_without_the_model(status_file):
    preparation, _, warned, ready = prepare("import sys; sys.exit(3)")
    wait_for(preparation.done.is_set, what="the preparation to end", timeout=30)
    assert not ready
    status = read_status(status_file)
    assert status["state"] == "failed" and "prepare_model failed (exit 3)" in status["detail"]
    assert "prepare_model failed (exit 3)" in server_down_message(status_file)
    assert any("runs without the model" in line for line in warned)


def test_stopping_the_app_stops_the_compiler_and_is_no_failure(status_file):
    # The stand-in starts a child of its own, as cmake starts compilers: the group goes.
    preparation, said, warned, ready = prepare(
        "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(600)']); print(p.pid, flush=True); p.wait()"
    )
    wait_for(lambda: said, what="the compiler stand-in's pid", timeout=30)
    child = int(said[0].split("|")[1])
    preparation.stop()

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(lambda: gone(child) and gone(preparation.proc.pid), what="the process group gone",
             timeout=30)  # fmt: skip
    assert not ready and not warned
    assert read_status(status_file)["state"] == "off"


def test_the_health_badge_says_the_model_is_being_prepared(status_file, monkeypatch):
    from calm_studio import health

    monkeypatch.setattr(local_model, "selected_model_name", lambda: "qwen2.5-coder-1.5b")
    preparation, _, _, _ = prepare("import time; time.sleep(600)")
    try:
        model = health._embedded_model()
        assert model["state"] == "preparing" and not model["ok"]
        assert "being prepared" in model["summary"]
    finally:
        preparation.stop()
