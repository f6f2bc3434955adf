"""The embedded model's build and its supervised server: build flags per CPU (simulated hosts),
the smoke check, restarts with backoff, and a dead server named in a job's error. The servers
here are STUB SERVERS (small HTTP processes, not models) that crash the way llama.cpp did."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from curation.engine.serving import llama_build
from curation.engine.serving.llama_build import (
    NATIVE,
    SAFE,
    BuildError,
    Host,
    cmake_args,
    ensure_build,
)
from curation.engine.serving.status import read_status, server_down_message
from curation.engine.serving.supervisor import Supervisor, smoke_generate

XEON_FLAGS = (
    "fpu sse2 avx avx2 fma f16c bmi2 avx512f avx512bw avx512_bf16 avx512_vnni amx_tile "
    "amx_int8 amx_bf16"
)
XEON = Host("x86_64", frozenset(XEON_FLAGS.split()))
OLD_X86 = Host("x86_64", frozenset(["fpu", "sse2", "sse4_2", "avx"]))
GRAVITON = Host("aarch64", frozenset(["fp", "asimd", "sve"]))


# --- build flags ----------------------------------------------------------------------------------


def test_the_safe_build_never_enables_native_only_instruction_sets():
    args = cmake_args(SAFE, XEON)
    assert "-DGGML_NATIVE=OFF" in args
    for option in llama_build.X86_NATIVE_ONLY:
        assert f"-D{option}=OFF" in args
    assert not [a for a in args if ("AVX512" in a or "AMX" in a) and a.endswith("=ON")]
    assert {"-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON"} <= set(args)


def test_the_safe_build_enables_only_what_this_cpu_reports():
    args = cmake_args(SAFE, OLD_X86)
    assert "-DGGML_AVX=ON" in args and "-DGGML_AVX2=OFF" in args and "-DGGML_FMA=OFF" in args


def test_arm_gets_the_generic_build_and_an_unknown_cpu_a_clear_refusal():
    assert cmake_args(SAFE, GRAVITON) == ["-DLLAVA_BUILD=OFF", "-DGGML_NATIVE=OFF"]
    with pytest.raises(BuildError, match=r"no safe llama\.cpp build is known for riscv64"):
        cmake_args(SAFE, Host("riscv64", frozenset()))
    assert "-DGGML_NATIVE=ON" in cmake_args(NATIVE, XEON)


def test_it_reads_cpu_flags_from_cpuinfo():
    x86 = Host.detect("processor: 0\nflags\t\t: fpu avx2 avx512f\n", machine="x86_64")
    arm = Host.detect("processor: 0\nFeatures\t: fp asimd\n", machine="aarch64")
    assert "avx512f" in x86.flags and x86.is_x86 and arm.flags == {"fp", "asimd"}


def test_a_failing_native_build_falls_back_to_the_safe_build_by_itself(tmp_path):
    built, said = [], []

    def build(requirement, args, directory):
        built.append(args)
        directory.mkdir(parents=True)
        wheel = directory / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
        wheel.write_text("w")
        return wheel

    def smoke(model_path):  # the native build dies the way the Xeon's did
        if "-DGGML_NATIVE=ON" in built[-1]:
            return {"ok": False, "error": "the process died with signal 11 (SIGSEGV)"}
        return {"ok": True, "tokens": 8, "tokens_per_s": 13.0}

    record = ensure_build(tmp_path / "m.gguf", tmp_path, "llama-cpp-python==0.3.36", "0.3.36",
                          variant=NATIVE, host=XEON, echo=said.append, build=build,
                          install=lambda wheel, req: None, smoke=smoke)  # fmt: skip
    assert record.variant == SAFE and "-DGGML_NATIVE=OFF" in record.cmake_args
    assert "native llama.cpp build failed its smoke test" in record.note
    assert "signal 11" in record.note
    assert any("falling back to the safe build" in line for line in said)
    assert llama_build.read_record(tmp_path).variant == SAFE


def test_a_safe_build_that_cannot_generate_fails_loudly(tmp_path):
    def build(requirement, args, directory):
        directory.mkdir(parents=True)
        (directory / "llama_cpp_python-x.whl").write_text("w")
        return directory / "llama_cpp_python-x.whl"

    with pytest.raises(BuildError, match=r"safe llama\.cpp build failed its smoke test.*no tokens"):
        ensure_build(
            tmp_path / "m.gguf", tmp_path, "r", "0.3.36", variant=SAFE, host=XEON,
            echo=lambda line: None, build=build, install=lambda w, r: None,
            smoke=lambda path: {"ok": False, "error": "the model generated no tokens"},
        )  # fmt: skip


def test_the_smoke_check_names_the_signal_that_killed_the_process(tmp_path):
    crashing = tmp_path / "python"
    crashing.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crashing.chmod(crashing.stat().st_mode | stat.S_IEXEC)
    result = llama_build.smoke_test(tmp_path / "m.gguf", python=str(crashing), timeout_s=30)
    assert result == {"ok": False, "error": "the process died with signal 11 (SIGSEGV)"}


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
