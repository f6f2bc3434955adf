"""Building llama.cpp's own server: which CPU variants are built for which host, that a variant
failing its smoke test is never served, and (where it is built here) the real server.

The build itself is replaced where a test says so (CMake takes minutes); the smoke tests run
real processes: a stand-in ``llama-server`` script (named as such) that dies with SIGILL when
the AMX variant lies next to it, as the AMX build did on a Xeon once.
"""

from __future__ import annotations

import json
import stat
import subprocess
import urllib.request
from pathlib import Path

import pytest

from curation.engine.serving import llama_server, local_model
from curation.engine.serving.llama_build import BuildError, Host

AVX2 = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2"
AVX512 = f"{AVX2} avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni"
# What /proc/cpuinfo says on the Sapphire Rapids machine this was written on.
SAPPHIRE = f"{AVX512} avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8"


def host(flags: str, machine: str = "x86_64") -> Host:
    return Host(machine=machine, flags=frozenset(flags.split()))


def names(h: Host) -> tuple[str, list[str]]:
    baseline, ladder = llama_server.candidates(h)
    return baseline.name, [v.name for v in ladder]


def test_an_avx2_cpu_gets_the_baseline_and_haswell():
    baseline, ladder = names(host(AVX2))
    assert baseline == "x64" and ladder[0] == "haswell"
    assert "skylakex" not in ladder and "sapphirerapids" not in ladder


def test_an_avx512_cpu_without_amx_gets_an_avx512_variant_first():
    baseline, ladder = names(host(AVX512))
    assert baseline == "x64" and ladder[0] == "icelake"
    best = llama_server.candidates(host(AVX512))[1][0]
    assert "-DGGML_AVX512=ON" in best.cmake_args and "-DGGML_AMX_TILE=OFF" in best.cmake_args
    assert "AVX512" in llama_server.instruction_sets(best)


def test_an_amx_cpu_tries_amx_first_then_avx512_without_it():
    _, ladder = names(host(SAPPHIRE))
    assert ladder[:2] == ["sapphirerapids", "zen4"]
    zen4 = llama_server.candidates(host(SAPPHIRE))[1][1]
    assert not any("AMX" in a and a.endswith("=ON") for a in zen4.cmake_args)


def test_an_old_cpu_without_avx_and_the_baseline_set_every_feature_off():
    _, ladder = names(host("fpu sse sse2 ssse3 sse4_1 sse4_2"))
    assert ladder == ["sse42"]
    x64 = llama_server.candidates(host(AVX2))[0]
    assert all(a.endswith("=OFF") for a in x64.cmake_args)  # runs on any x86-64
    assert len(x64.cmake_args) == len(llama_server.X86_FEATURES)  # none left to a default


def test_aarch64_gets_its_own_variants_as_the_only_cpu_backend():
    h = host("fp asimd evtstrm aes crc32 asimdhp asimddp", machine="aarch64")
    baseline, ladder = llama_server.candidates(h)
    assert baseline.name == "armv8.0_1" and baseline.cmake_args == ("-DGGML_CPU_ARM_ARCH=armv8-a",)
    assert ladder[0].name == "armv8.2_2"
    assert ladder[0].cmake_args == ("-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16",)
    # Built without llama.cpp's feature check, so it must be the one libggml-cpu.so.
    assert ladder[0].library == "libggml-cpu.so"


def test_an_unknown_architecture_is_refused_clearly():
    with pytest.raises(BuildError, match="riscv64"):
        llama_server.candidates(host("", machine="riscv64"))


def test_every_build_loads_its_cpu_backend_at_run_time_without_curl():
    args = llama_server.COMMON_ARGS
    for flag in ("-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=OFF", "-DLLAMA_CURL=OFF",
                 "-DGGML_NATIVE=OFF"):  # fmt: skip
        assert flag in args


# --- the ladder, with real smoke-test processes ------------------------------------------------

STAND_IN = """#!/bin/sh
# A stand-in for llama-server (not llama.cpp): it "loads" the CPU variant next to it and dies
# with SIGILL when that variant was built with AMX.
cd "$(dirname "$0")"
for lib in libggml-cpu*.so; do :; done
case "$(cat "$lib")" in *AMX_TILE=ON*) kill -ILL $$ ;; esac
echo "load_backend: loaded CPU backend from $PWD/$lib"
"""


def fake_build(calls: list):
    def build(src, build_dir, args, targets, *, jobs):
        calls.append((build_dir.name, tuple(targets)))
        bin_dir = build_dir / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "libggml-cpu.so").write_text(" ".join(args))
        if "llama-server" in targets:
            server = bin_dir / "llama-server"
            server.write_text(STAND_IN)
            server.chmod(server.stat().st_mode | stat.S_IEXEC)
            (bin_dir / "llama-quantize").write_text("")
            (bin_dir / "libllama.so").write_text("")
            (bin_dir / "libggml-base.so").write_text("")
        return 1.5

    return build


def fake_source(root: Path) -> tuple[Path, str]:
    (root / "src").mkdir(parents=True, exist_ok=True)
    return root / "src", "0.3.36-test"


def test_a_variant_that_fails_its_smoke_test_is_never_served(tmp_path):
    calls: list = []
    said: list[str] = []
    record = llama_server.ensure_server(
        None, root=tmp_path, host=host(SAPPHIRE), jobs=2, echo=said.append,
        source=fake_source, build=fake_build(calls),
    )  # fmt: skip
    served = Path(record.directory)
    assert sorted(p.name for p in served.glob("libggml-cpu*")) == [
        "libggml-cpu-x64.so", "libggml-cpu-zen4.so",
    ]  # fmt: skip
    assert record.in_use == "zen4" and record.variants == ["zen4", "x64"]
    assert "SIGILL" in record.rejected["sapphirerapids"]
    assert "AVX512" in record.instruction_sets and "AMX" not in record.instruction_sets
    assert any("sapphirerapids failed its smoke test" in line for line in said)
    assert record.build_seconds == 4.5  # the core, the AMX variant, zen4
    # llama.cpp, given both, loads the best that passed: the stand-in reports the last one.
    result = llama_server.smoke_test(served, None)
    assert result["ok"] and result["loaded"] == "libggml-cpu-zen4.so"
    # A second run reuses the finished build: nothing is built again.
    again = llama_server.ensure_server(
        None, root=tmp_path, host=host(SAPPHIRE), source=fake_source, build=fake_build(calls),
    )  # fmt: skip
    assert again == llama_server.read_record(tmp_path / "0.3.36-test") and len(calls) == 3
    assert llama_server.installed(tmp_path) == again  # what serving and devstack find


def test_a_baseline_that_fails_stops_the_build_and_serves_nothing(tmp_path):
    def smoke(directory, model_path):
        return {"ok": False, "error": "the process died with signal 4 (SIGILL)"}

    with pytest.raises(BuildError, match=r"baseline llama-server build \(x64\) failed.*SIGILL"):
        llama_server.ensure_server(
            None, root=tmp_path, host=host(AVX2), source=fake_source, build=fake_build([]),
            smoke=smoke,
        )  # fmt: skip
    assert not list((tmp_path / "0.3.36-test").glob("serve-*"))


def test_the_smoke_test_names_the_signal_that_killed_the_server(tmp_path):
    server = tmp_path / "llama-server"
    server.write_text("#!/bin/sh\nkill -ILL $$\n")
    server.chmod(0o755)
    result = llama_server.smoke_test(tmp_path, None)
    assert not result["ok"] and "SIGILL" in result["error"]


# --- the real server, where it is built ---------------------------------------------------------

BUILT = llama_server.installed()


@pytest.mark.skipif(
    BUILT is None, reason="llama-server is not built here (prepare_model builds it)"
)
def test_the_real_build_loads_the_variant_it_recorded():
    result = llama_server.smoke_test(Path(BUILT.directory), None)
    assert result["ok"], result
    model = local_model.model_path(local_model.get_model())
    if model.is_file():  # a generation: the server maps the variant it chose
        result = llama_server.smoke_test(Path(BUILT.directory), model)
        assert result["ok"] and result["loaded"] == f"libggml-cpu-{BUILT.in_use}.so", result
    assert not set(BUILT.rejected) & {
        p.name[len("libggml-cpu-") : -len(".so")]
        for p in Path(BUILT.directory).glob("libggml-cpu-*.so")
    }


def _model_reason() -> str | None:
    if BUILT is None:
        return "llama-server is not built here (prepare_model builds it)"
    if not local_model.is_prepared(local_model.get_model()):
        return "the embedded model is not prepared here (python manage.py prepare_model)"
    return None


@pytest.mark.skipif(_model_reason() is not None, reason=str(_model_reason()))
@pytest.mark.timeout(300)
def test_the_real_server_takes_ids_and_returns_ids_and_keeps_a_prefix_in_its_slot():
    """Token ids in, token ids out, on the real llama-server with two slots, and a
    continuation of a prefix after another request reuses the prefix's slot cache."""
    from curation.engine import GenerationRequest, load_backend

    spec = local_model.get_model()
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = local_model.server_command(
        BUILT.server, local_model.model_path(spec), port=port,
        n_threads=local_model.n_threads(), n_ctx=2048, slots=2, alias=spec.name,
    )  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}"

    def post(path, body):
        request = urllib.request.Request(  # noqa: S310
            root + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return json.loads(response.read())

    try:
        local_model.wait_ready(root + "/v1", timeout=180, alive=lambda: proc.poll() is None)
        prompt = post("/tokenize", {"content": "def add(a, b):\n    return"})["tokens"]
        backend = load_backend({
            "backend": "openai", "model": spec.name, "base_url": root + "/v1",
            "completion_api": "llama.cpp", "tokenizer": "", "eos_token_ids": [151643, 151645],
            "check_retokenization": False,
        })  # fmt: skip
        backend.decode = lambda ids, skip_special_tokens=False: post(  # no local tokenizer
            "/detokenize", {"tokens": list(ids)}
        )["content"]
        [first] = backend.generate([GenerationRequest(prompt, 8, temperature=0.0)])
        assert first.error is None and 1 <= len(first.token_ids) <= 8
        assert all(isinstance(i, int) for i in first.token_ids)
        # Another problem comes in between; then the same prefix, extended by what came back:
        # its slot still has it cached (the other request took the other slot).
        other = post("/tokenize", {"content": "import pyomo.environ as pyo\nm = pyo."})["tokens"]
        post("/completion", {"prompt": other, "n_predict": 2, "cache_prompt": True})
        again = post("/completion", {"prompt": prompt + first.token_ids, "n_predict": 1,
                                     "return_tokens": True, "cache_prompt": True})  # fmt: skip
        assert again["tokens"] and again["timings"]["cache_n"] >= len(prompt)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_sdist_is_downloaded_with_its_build_backend_and_refused_when_its_hash_differs(tmp_path):
    """pip prepares an sdist's metadata even to download it: with build isolation off, a fresh
    venv has no scikit-build-core and the download fails (a fresh `make run` lost its model so).
    A file that is not the pinned sdist is deleted and never built."""
    seen: list[list[str]] = []

    def run(argv, check):
        seen.append(argv)
        target = (
            Path(argv[argv.index("-d") + 1]) / f"llama_cpp_python-{llama_server.VERSION}.tar.gz"
        )
        target.write_bytes(b"not the sdist")
        return subprocess.CompletedProcess(argv, 0)

    with pytest.raises(BuildError, match="not the pinned 832db0699007"):
        llama_server.fetch_source(tmp_path, run=run)
    assert "--no-build-isolation" not in seen[0] and "--no-binary" in seen[0]
    assert not list((tmp_path / "sdist").glob("*.tar.gz"))
