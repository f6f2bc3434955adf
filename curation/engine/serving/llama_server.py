"""Building llama.cpp's own server (``llama-server``) so that it runs fast on the CPU at hand and
never with a CPU variant that failed on it.

The source is the llama.cpp that the pinned ``llama-cpp-python`` sdist carries
(``vendor/llama.cpp``), fetched from PyPI with pip. The build loads its CPU backend at run time
(``GGML_BACKEND_DL``): llama.cpp scores every ``libggml-cpu-<variant>.so`` next to the binary and
loads the best one the CPU supports. Instead of all fifteen x86 variants
(``GGML_CPU_ALL_VARIANTS``: over 20 minutes on 2 cores) two are built, with the feature sets
llama.cpp itself declares for them (``ggml_add_cpu_backend_variant`` in
``ggml/src/CMakeLists.txt``): a **baseline** that runs on any CPU of the architecture, and the
**best** variant whose features this CPU reports. Each is smoke-tested alone (the server loads
only it and generates a few tokens, or lists its devices when no model is at hand); a variant
that fails is never copied into the served directory, and the next best one is tried instead
(so the AMX variant that crashed once cannot be used where it crashes).

Layout under ``<cache>/llama-server/<version>-<source hash>/``: ``src/`` (the extracted
llama.cpp), one CMake build directory per flag set (``build-<name>-<digest>/``, reused), and
``serve-<digest>/``, the directory served from (the binaries, the shared libraries and only the
variants that passed), with ``build.json`` recording flags, variants, smoke results and build
time. Plain Python, no Django.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..env import env_int
from .llama_build import SMOKE_PROMPT, SMOKE_TOKENS, BuildError, Host, _death

VERSION = "0.3.36"
REQUIREMENT = f"llama-cpp-python=={VERSION}"
# The sdist's own hash (PyPI's): a download that differs is refused, never built.
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
TARGETS = ("llama-server", "llama-quantize")
SMOKE_TIMEOUT_S = 180.0

# Flags every build gets: the CPU backend is a loadable module, no HTTPS/curl, no web UI fetch,
# libraries found next to the binary ($ORIGIN), so the served directory can be copied anywhere.
COMMON_ARGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=ON",
    "-DCMAKE_BUILD_RPATH_USE_ORIGIN=ON",
    "-DGGML_BACKEND_DL=ON",
    "-DGGML_CPU_ALL_VARIANTS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)
# A variant's own build needs only ggml: no tools, no common library.
VARIANT_ONLY_ARGS = ("-DLLAMA_BUILD_TOOLS=OFF", "-DLLAMA_BUILD_COMMON=OFF")

# llama.cpp's x86 feature options, and the /proc/cpuinfo flags each one needs.
X86_FEATURES = {
    "SSE42": ("sse4_2",),
    "AVX": ("avx",),
    "F16C": ("f16c",),
    "FMA": ("fma",),
    "AVX2": ("avx2",),
    "BMI2": ("bmi2",),
    "AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "AVX512_VBMI": ("avx512vbmi",),
    "AVX512_VNNI": ("avx512_vnni",),
    "AVX512_BF16": ("avx512_bf16",),
    "AVX_VNNI": ("avx_vnni",),
    "AMX_TILE": ("amx_tile",),
    "AMX_INT8": ("amx_int8",),
    "AMX_BF16": ("amx_bf16",),
}
_BASE = ("SSE42", "AVX", "F16C", "FMA", "AVX2", "BMI2")
_SKX = (*_BASE, "AVX512")
# The x86 variants as llama.cpp declares them (ggml/src/CMakeLists.txt, GCC/Clang), in order.
X86_VARIANTS: dict[str, tuple[str, ...]] = {
    "x64": (),
    "sse42": ("SSE42",),
    "sandybridge": ("SSE42", "AVX"),
    "ivybridge": ("SSE42", "AVX", "F16C"),
    "piledriver": ("SSE42", "AVX", "F16C", "FMA"),
    "haswell": _BASE,
    "skylakex": _SKX,
    "cannonlake": (*_SKX, "AVX512_VBMI"),
    "cascadelake": (*_SKX, "AVX512_VNNI"),
    "icelake": (*_SKX, "AVX512_VBMI", "AVX512_VNNI"),
    "cooperlake": (*_SKX, "AVX512_VNNI", "AVX512_BF16"),
    "zen4": (*_SKX, "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"),
    "alderlake": (*_BASE, "AVX_VNNI"),
    "sapphirerapids": (
        *_SKX,
        "AVX512_VBMI",
        "AVX512_VNNI",
        "AVX512_BF16",
        "AMX_TILE",
        "AMX_INT8",
    ),
}
# aarch64 (Linux): llama.cpp's variants, their -march, and the /proc/cpuinfo Features they need.
ARM_FEATURES = {
    "DOTPROD": ("asimddp", "+dotprod"),
    "FP16_VECTOR_ARITHMETIC": ("asimdhp", "+fp16"),
    "SVE": ("sve", "+sve"),
    "MATMUL_INT8": ("i8mm", "+i8mm"),
    "SVE2": ("sve2", "+sve2"),
}
ARM_VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "armv8.0_1": ("armv8-a", ()),
    "armv8.2_1": ("armv8.2-a", ("DOTPROD",)),
    "armv8.2_2": ("armv8.2-a", ("DOTPROD", "FP16_VECTOR_ARITHMETIC")),
    "armv8.2_3": ("armv8.2-a", ("DOTPROD", "FP16_VECTOR_ARITHMETIC", "SVE")),
    "armv8.6_1": ("armv8.6-a", ("DOTPROD", "FP16_VECTOR_ARITHMETIC", "SVE", "MATMUL_INT8")),
    "armv8.6_2": (
        "armv8.6-a",
        ("DOTPROD", "FP16_VECTOR_ARITHMETIC", "SVE", "MATMUL_INT8", "SVE2"),
    ),
}


@dataclass(frozen=True)
class Variant:
    """One CPU backend: its llama.cpp name, the features it is compiled for, its CMake flags."""

    name: str
    features: tuple[str, ...]
    cmake_args: tuple[str, ...]
    scored: bool = True  # built with llama.cpp's feature check (x86); else the only backend

    @property
    def library(self) -> str:
        """The file name in the served directory: llama.cpp scores every ``libggml-cpu-*.so``
        and loads the best; a backend without the feature check must be ``libggml-cpu.so``."""
        return f"libggml-cpu-{self.name}.so" if self.scored else "libggml-cpu.so"


def x86_variant(name: str) -> Variant:
    features = X86_VARIANTS[name]
    args = [f"-DGGML_{option}={'ON' if option in features else 'OFF'}" for option in X86_FEATURES]
    return Variant(name, features, tuple(args))


def arm_variant(name: str) -> Variant:
    march, features = ARM_VARIANTS[name]
    tags = "".join(ARM_FEATURES[f][1] for f in features)
    return Variant(name, features, (f"-DGGML_CPU_ARM_ARCH={march}{tags}",), scored=False)


def supports(variant: Variant, host: Host) -> bool:
    table = X86_FEATURES if host.is_x86 else {k: (v[0],) for k, v in ARM_FEATURES.items()}
    return all(flag in host.flags for feature in variant.features for flag in table[feature])


def candidates(host: Host) -> tuple[Variant, list[Variant]]:
    """The baseline variant and the variants this CPU supports, best first (most features; on a
    tie the later one in llama.cpp's list). The baseline is never among the candidates."""
    if host.is_x86:
        baseline, table, make = "x64", X86_VARIANTS, x86_variant
    elif host.is_arm:
        baseline, table, make = "armv8.0_1", ARM_VARIANTS, arm_variant
    else:
        raise BuildError(
            f"no llama-server build is known for {host.machine}: run without the embedded model "
            "(CALM_LOCAL_MODEL=off) or point CALM_LOCAL_MODEL_URL-style endpoints at a server"
        )
    order = list(table)
    supported = [make(n) for n in order if n != baseline and supports(make(n), host)]
    supported.sort(key=lambda v: (len(v.features), order.index(v.name)), reverse=True)
    return make(baseline), supported


def instruction_sets(variant: Variant) -> str:
    """What a person reads: 'AVX2, AVX512, ...' or 'baseline (no extensions)'."""
    return ", ".join(variant.features) if variant.features else "baseline (no extensions)"


def digest(args: Sequence[str]) -> str:
    return hashlib.sha256(" ".join(args).encode()).hexdigest()[:10]


def build_jobs() -> int:
    """``CALM_LLAMA_BUILD_JOBS``, by default the CPUs available."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count() or 1
    return max(1, env_int("CALM_LLAMA_BUILD_JOBS", available))


# --- the record -----------------------------------------------------------------------------------


@dataclass
class ServerBuild:
    """The served build: where it is, what it was built with, which variants passed."""

    directory: str  # the served directory: llama-server, llama-quantize, libraries, variants
    source: str  # "<version>-<sha256 of the sdist, 12>"
    cmake_args: list[str]
    baseline: str
    variants: list[str]  # the variants that passed their smoke test, best first
    in_use: str  # the variant llama.cpp loads here (the best that passed)
    instruction_sets: str
    smoke: dict = field(default_factory=dict)  # variant -> result
    rejected: dict = field(default_factory=dict)  # variant -> why it is not used
    build_seconds: float = 0.0
    note: str = ""

    @property
    def server(self) -> Path:
        return Path(self.directory) / "llama-server"

    @property
    def quantize(self) -> Path:
        return Path(self.directory) / "llama-quantize"

    def to_dict(self) -> dict:
        return asdict(self)


def record_path(root: Path) -> Path:
    return root / "build.json"


def read_record(root: Path) -> ServerBuild | None:
    try:
        record = ServerBuild(**json.loads(record_path(root).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return record if record.server.is_file() else None


def write_record(root: Path, record: ServerBuild) -> None:
    root.mkdir(parents=True, exist_ok=True)
    path = record_path(root)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=2))
    os.replace(tmp, path)


def default_root() -> Path:
    explicit = os.environ.get("CALM_LLAMA_SERVER_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "calm-studio" / "llama-server"


def installed(root: Path | None = None) -> ServerBuild | None:
    """The finished build of the pinned source, if there is one (no building, no smoke test)."""
    root = root or default_root()
    records = sorted(root.glob(f"{VERSION}-*/build.json"), key=lambda p: p.stat().st_mtime)
    for path in reversed(records):
        record = read_record(path.parent)
        if record is not None:
            return record
    return None


# --- the source -----------------------------------------------------------------------------------


def fetch_source(root: Path, *, run: Callable = subprocess.run) -> tuple[Path, str]:
    """The extracted llama.cpp of the pinned sdist and its id ``<version>-<sha12>``."""
    sdist_dir = root / "sdist"
    found = sorted(sdist_dir.glob(f"llama_cpp_python-{VERSION}.tar.gz"))
    if not found:
        sdist_dir.mkdir(parents=True, exist_ok=True)
        # pip prepares an sdist's metadata even to download it, with its build backend
        # (scikit-build-core): build isolation installs that backend; without it a fresh venv
        # fails ("Cannot import build backend"), which is how `make run` lost its model once.
        argv = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                "-d", str(sdist_dir), REQUIREMENT]  # fmt: skip
        result = run(argv, check=False)
        found = sorted(sdist_dir.glob(f"llama_cpp_python-{VERSION}.tar.gz"))
        if result.returncode != 0 or not found:
            raise BuildError(
                f"downloading the {REQUIREMENT} sdist failed (exit {result.returncode})"
            )
    sdist = found[-1]
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        sdist.unlink()
        raise BuildError(
            f"{sdist.name} has sha256 {digest}, not the pinned {SDIST_SHA256}: "
            "refused and deleted (a mirror serving another file?)"
        )
    sha = digest[:12]
    source_id = f"{VERSION}-{sha}"
    src = root / source_id / "src"
    if not (src / "CMakeLists.txt").is_file():
        prefix = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
        tmp = Path(tempfile.mkdtemp(prefix=".src-", dir=root))
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(prefix)]
            for member in members:
                member.name = member.name[len(prefix) :]
            archive.extractall(tmp, members=members, filter="data")
        src.parent.mkdir(parents=True, exist_ok=True)
        if src.exists():
            shutil.rmtree(src)
        os.replace(tmp, src)
    return src, source_id


# --- building -------------------------------------------------------------------------------------


def cmake_build(
    src: Path,
    build_dir: Path,
    args: Sequence[str],
    targets: Sequence[str],
    *,
    jobs: int,
    run: Callable = subprocess.run,
) -> float:
    """Configure and build ``targets`` in ``build_dir`` (CMake reuses what is built); seconds."""
    started = time.monotonic()
    configure = ["cmake", "-S", str(src), "-B", str(build_dir), *args]
    if shutil.which("ninja"):
        configure[1:1] = ["-G", "Ninja"] if not (build_dir / "CMakeCache.txt").exists() else []
    build = ["cmake", "--build", str(build_dir), "-j", str(jobs), "--target", *targets]
    for argv in (configure, build):
        result = run(argv, check=False)
        if result.returncode != 0:
            raise BuildError(
                f"`{' '.join(argv[:6])} ...` failed (exit {result.returncode}); building "
                "llama-server needs a C++ compiler and cmake (Debian: apt-get install "
                "build-essential cmake)"
            )
    return time.monotonic() - started


def _shared_files(bin_dir: Path) -> list[Path]:
    """The binaries and the shared libraries they load, without any CPU backend."""
    files = [bin_dir / t for t in TARGETS if (bin_dir / t).is_file()]
    files += [p for p in sorted(bin_dir.glob("lib*.so*")) if not p.name.startswith("libggml-cpu")]
    return files


def _place(files: Sequence[Path], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for path in files:
        target = directory / path.name
        if target.exists() or target.is_symlink():
            target.unlink()
        if path.is_symlink():
            target.symlink_to(os.readlink(path))
        else:
            shutil.copy2(path, target)


# --- the smoke test -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_LOADED = re.compile(r"loaded CPU backend from (\S+)")
_SYSTEM_INFO = re.compile(r"system_info: [^\n]*?\| (CPU : [^\n]*)")


def smoke_test(
    directory: Path,
    model_path: Path | None,
    *,
    threads: int = 2,
    timeout_s: float = SMOKE_TIMEOUT_S,
) -> dict:
    """Run the server in ``directory`` (whatever CPU variants lie there) in a child process: with
    a model, start it and generate a few tokens; without one, list its devices. Returns
    {ok, loaded, tokens?, tokens_per_s?} or {ok: False, error} naming the signal or the error;
    ``loaded`` is the CPU backend file llama.cpp chose."""
    server = directory / "llama-server"
    env = {k: v for k, v in os.environ.items() if k != "GGML_BACKEND_PATH"}
    if model_path is None:
        try:
            proc = subprocess.run(
                [str(server), "--list-devices"], capture_output=True, text=True,
                timeout=timeout_s, check=False, cwd=directory, env=env,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"--list-devices took over {timeout_s:.0f} s"}
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            return {"ok": False, "error": _death(proc.returncode, output)}
        # llama-server loads its backends before its log is set up: the line shows only where
        # a stand-in prints it. Exiting cleanly means the variant loaded and initialised.
        loaded = _LOADED.search(output)
        return {"ok": True, "kind": "devices",
                "loaded": Path(loaded.group(1)).name if loaded else None}  # fmt: skip
    port = _free_port()
    argv = [str(server), "-m", str(model_path), "--host", "127.0.0.1", "--port", str(port),
            "-c", "512", "-np", "1", "-t", str(threads), "--no-warmup"]  # fmt: skip
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=directory, env=env)
        try:
            return _smoke_generate(proc, port, log, timeout_s)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _mapped_cpu_backend(pid: int) -> str | None:
    """The CPU backend file the running server has mapped (Linux), e.g. libggml-cpu-zen4.so."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None
    found = {Path(line.split()[-1]).name for line in maps.splitlines() if "libggml-cpu" in line}
    return sorted(found)[0] if len(found) == 1 else None


def _smoke_generate(proc: subprocess.Popen, port: int, log, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    base = f"http://127.0.0.1:{port}"
    while True:
        if proc.poll() is not None:
            log.seek(0)
            return {"ok": False, "error": _death(proc.returncode, log.read())}
        if time.monotonic() > deadline:
            return {"ok": False, "error": f"not ready in {timeout_s:.0f} s"}
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    body = json.dumps({"prompt": SMOKE_PROMPT, "n_predict": SMOKE_TOKENS, "temperature": 0})
    request = urllib.request.Request(  # noqa: S310
        base + "/completion", body.encode(), {"Content-Type": "application/json"}
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        proc.poll()
        if proc.returncode is not None:
            log.seek(0)
            return {"ok": False, "error": _death(proc.returncode, log.read())}
        return {"ok": False, "error": f"the smoke generation failed: {exc}"}
    seconds = time.monotonic() - started
    tokens = int(data.get("tokens_predicted") or 0)
    mapped = _mapped_cpu_backend(proc.pid)
    log.seek(0)
    output = log.read()
    loaded = _LOADED.search(output)
    info = _SYSTEM_INFO.search(output)  # what the loaded backend says it uses ("AVX512 = 1")
    if not tokens:
        return {"ok": False, "error": "the model generated no tokens"}
    return {"ok": True, "kind": "generation", "tokens": tokens,
            "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
            "loaded": mapped or (Path(loaded.group(1)).name if loaded else None),
            "system_info": info.group(1).strip() if info else ""}  # fmt: skip


# --- the whole thing ------------------------------------------------------------------------------


def ensure_server(
    model_path: Path | None = None,
    *,
    root: Path | None = None,
    host: Host | None = None,
    jobs: int | None = None,
    echo: Callable[[str], None] = print,
    source: Callable[[Path], tuple[Path, str]] = fetch_source,
    build: Callable = cmake_build,
    smoke: Callable = smoke_test,
) -> ServerBuild:
    """Make sure a llama-server build whose CPU variants all passed their smoke test is in the
    cache; build what is missing. The baseline must pass (otherwise ``BuildError``); of the
    CPU's best variants, the first that passes joins it, and each one that fails is recorded in
    ``rejected`` and never placed in the served directory."""
    root = root or default_root()
    host = host or Host.detect()
    jobs = jobs or build_jobs()
    baseline, ladder = candidates(host)
    src, source_id = source(root)
    home = root / source_id
    core_args = [*COMMON_ARGS, *baseline.cmake_args]
    serve_dir = home / f"serve-{digest([*core_args, *(v.name for v in ladder)])}"
    record = read_record(home)
    if record is not None and Path(record.directory) == serve_dir:
        # Reused as is, unless a model is at hand and the variants were only listed, not run.
        kinds = {r.get("kind") for r in record.smoke.values() if r.get("ok")}
        if model_path is None or kinds == {"generation"}:
            return record

    echo(f"llama-server: building {', '.join(TARGETS)} from llama.cpp of {source_id} "
         f"({jobs} jobs)")  # fmt: skip
    core_dir = home / f"build-core-{digest(core_args)}"
    seconds = build(src, core_dir, core_args, TARGETS, jobs=jobs)
    echo(f"llama-server: built in {seconds:.0f} s")
    files = _shared_files(core_dir / "bin")
    baseline_lib = core_dir / "bin" / "libggml-cpu.so"

    def trial(variant: Variant, library: Path) -> dict:
        """The variant alone next to the server, smoke-tested."""
        trial_dir = home / f"trial-{variant.name}"
        if trial_dir.exists():
            shutil.rmtree(trial_dir)
        _place(files, trial_dir)
        shutil.copy2(library, trial_dir / variant.library)
        result = smoke(trial_dir, model_path)
        shutil.rmtree(trial_dir, ignore_errors=True)
        return result

    smoke_results: dict[str, dict] = {}
    rejected: dict[str, str] = {}
    result = trial(baseline, baseline_lib)
    smoke_results[baseline.name] = result
    if not result.get("ok"):
        raise BuildError(
            f"the baseline llama-server build ({baseline.name}) failed its smoke test: "
            f"{result.get('error')}. The embedded model cannot be served on this CPU "
            "(CALM_LOCAL_MODEL=off runs without it)"
        )
    echo(f"llama-server: {baseline.name} passed its smoke test")
    libraries: dict[str, Path] = {baseline.name: baseline_lib}
    passed: list[Variant] = []
    for variant in ladder:
        args = [*COMMON_ARGS, *VARIANT_ONLY_ARGS, *variant.cmake_args]
        variant_dir = home / f"build-{variant.name}-{digest(args)}"
        echo(f"llama-server: building the {variant.name} CPU variant ({instruction_sets(variant)})")
        seconds += build(src, variant_dir, args, ("ggml-cpu",), jobs=jobs)
        library = variant_dir / "bin" / "libggml-cpu.so"
        result = trial(variant, library)
        smoke_results[variant.name] = result
        if result.get("ok"):
            echo(f"llama-server: {variant.name} passed its smoke test")
            libraries[variant.name] = library
            passed.append(variant)
            break
        rejected[variant.name] = str(result.get("error"))
        echo(f"llama-server: {variant.name} failed its smoke test ({result.get('error')}): "
             "it is not used")  # fmt: skip

    staging = home / f".{serve_dir.name}.{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    _place(files, staging)
    best = passed[0] if passed else baseline
    # x86: every passing variant, llama.cpp loads the best the CPU supports; otherwise the one.
    for variant in [*passed, baseline] if best.scored else [best]:
        shutil.copy2(libraries[variant.name], staging / variant.library)
    if serve_dir.exists():
        shutil.rmtree(serve_dir)
    os.replace(staging, serve_dir)
    record = ServerBuild(
        directory=str(serve_dir), source=source_id, cmake_args=core_args,
        baseline=baseline.name, variants=[v.name for v in passed] + [baseline.name],
        in_use=best.name, instruction_sets=instruction_sets(best), smoke=smoke_results,
        rejected=rejected, build_seconds=round(seconds, 1),
        note="; ".join(f"{n} is not used: {e}" for n, e in rejected.items()),
    )  # fmt: skip
    write_record(home, record)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m curation.engine.serving.llama_server [MODEL.gguf]``: build, print the record."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        record = ensure_server(Path(args[0]) if args else None)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(record.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
