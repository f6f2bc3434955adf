"""The embedded model's supervised server: the host's CPU flags, the smoke check, restarts with
backoff, and a dead server named in a job's error. The servers
here are STUB SERVERS (small HTTP processes, not models) that crash the way llama.cpp did."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from curation.engine.serving.llama_build import Host
from curation.engine.serving.status import read_status, server_down_message
from curation.engine.serving.supervisor import Supervisor, smoke_generate

# --- the host ------------------------------------------------------------------------------------


def test_it_reads_cpu_flags_from_cpuinfo():
    x86 = Host.detect("processor: 0\nflags\t\t: fpu avx2 avx512f\n", machine="x86_64")
    arm = Host.detect("processor: 0\nFeatures\t: fp asimd\n", machine="aarch64")
    assert "avx512f" in x86.flags and x86.is_x86 and arm.flags == {"fp", "asimd"}


# --- a supervised stub server ---------------------------------------------------------------------

STUB = textwrap.dedent(
    """
    import json, os, signal, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    MODE = os.environ.get("STUB_MODE", "crash")

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, data):
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send({"data": [{"id": "stub"}]})

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            if MODE == "crash":  # as llama.cpp's first decode did on an AVX-512 host
                os.kill(os.getpid(), signal.SIGSEGV)
            if MODE == "silent":
                self._send({"choices": [{"text": ""}], "usage": {"completion_tokens": 0}})
            else:
                self._send({"choices": [{"text": " a + b"}], "usage": {"completion_tokens": 3}})

    print("stub serving", flush=True)
    HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _supervisor(tmp_path, mode, **kw) -> Supervisor:
    port = _port()
    return Supervisor(
        [sys.executable, "-c", STUB, str(port)], base_url=f"http://127.0.0.1:{port}/v1",
        model="stub", status_file=tmp_path / "model-server.json", name="embedded model",
        env={**os.environ, "STUB_MODE": mode}, ready_timeout_s=30, **kw,
    )  # fmt: skip


def test_a_server_that_dies_in_its_smoke_test_is_restarted_then_given_up(tmp_path):
    lines = []
    sup = _supervisor(tmp_path, "crash", max_restarts=2, backoff_s=0.05,
                      on_output=lines.append).start()  # fmt: skip
    try:
        assert sup.wait_for("failed", timeout=60) == "failed"
    finally:
        sup.stop()
    status = read_status(tmp_path / "model-server.json")
    assert status["state"] == "stopped"  # after stop(); the failure was recorded before
    assert sup.restarts == 2 and "stub serving" in lines


def test_a_failed_server_says_which_signal_killed_it(tmp_path):
    sup = _supervisor(tmp_path, "crash", max_restarts=0).start()
    assert sup.wait_for("failed", timeout=60) == "failed"
    message = server_down_message(tmp_path / "model-server.json")
    assert message.startswith("the embedded model server exited with signal 11 (SIGSEGV)")
    assert "restarted 0 time(s) and is not running" in message
    sup.stop()


def test_a_server_that_answers_without_tokens_fails_its_smoke_check(tmp_path):
    sup = _supervisor(tmp_path, "silent", max_restarts=0).start()
    assert sup.wait_for("failed", timeout=60) == "failed"
    status = read_status(tmp_path / "model-server.json")
    assert status["detail"] == "the smoke generation returned no tokens"
    sup.stop()


def test_a_healthy_server_is_smoke_tested_and_ready(tmp_path):
    sup = _supervisor(tmp_path, "ok").start()
    try:
        assert sup.wait_for("ready", timeout=60) == "ready"
        status = read_status(tmp_path / "model-server.json")
        assert status["smoke"]["ok"] and status["smoke"]["tokens"] == 3
        assert smoke_generate(sup.base_url, "stub")["ok"]
    finally:
        sup.stop()
    assert read_status(tmp_path / "model-server.json")["state"] == "stopped"
    assert sup.proc.poll() is not None


# --- the job and the header say it ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_job_names_the_dead_model_server_not_a_connection_error(tmp_path, tiny_model_path,
                                                                  monkeypatch):  # fmt: skip
    from calm_studio.health import system_health
    from curation.models import Benchmark, Job, ModelEndpoint, Problem
    from curation.services.trajectories import generate_job_run, trajectories_generate

    # Smoke-tested at start with a healthy answer, then it dies in the job's first request.
    sup = _supervisor(tmp_path, "ok", max_restarts=1, backoff_s=30).start()
    assert sup.wait_for("ready", timeout=60) == "ready"
    os.kill(sup.proc.pid, signal.SIGSEGV)
    assert sup.wait_for("restarting", timeout=30) == "restarting"
    endpoint = ModelEndpoint.objects.create(
        name="embedded", backend="openai", base_url=sup.base_url, model="stub",
        tokenizer=str(tiny_model_path), sampling={"max_new_tokens": 20},
        extra={"token_prompts": False, "max_retries": 1, "retry_backoff_s": 0.05,
               "server_status_file": str(sup.status_file)},
    )  # fmt: skip
    problem = Problem.objects.create(
        benchmark=Benchmark.objects.get_or_create(name="B")[0], external_id="p", question="Q?",
        answer=1, content_hash="h",
    )  # fmt: skip
    try:
        job = trajectories_generate(problems=[problem], endpoint=endpoint, enqueue=False)
        done = generate_job_run(job_id=job.pk, worker="test")
        assert done.status == Job.Status.FAILED
        assert "the embedded model server exited with signal 11 (SIGSEGV)" in done.error
        assert "restarting it (restart 1 of 1)" in done.error
        # The header badge shows it too.
        monkeypatch.setenv("CALM_MODEL_STATUS_FILE", str(sup.status_file))
        model = system_health()["checks"]["model"]
        assert model["ok"] is False and "signal 11" in model["summary"]
    finally:
        sup.stop()


def test_status_files_are_written_whole(tmp_path):
    from curation.engine.serving.supervisor import write_status

    write_status(tmp_path / "s.json", state="ready", name="x")
    assert json.loads(Path(tmp_path / "s.json").read_text())["state"] == "ready"
    assert list(tmp_path.iterdir()) == [tmp_path / "s.json"]
