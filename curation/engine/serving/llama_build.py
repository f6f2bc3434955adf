"""Building llama-cpp-python so that it runs on the CPU at hand, and proving that it does.

llama.cpp's default build (``GGML_NATIVE=ON``) compiles for every instruction set the build
machine's compiler detects. On some CPUs that build crashes in the first decode (seen: an Intel
Xeon with AVX-512 and AMX, signal 11), and a wheel built natively on one host and reused on
another can crash the same way. So the default here is the **safe** build: ``GGML_NATIVE=OFF``
with only the baseline x86-64 extensions (AVX, AVX2, FMA, F16C, BMI2) that this CPU reports, and
AVX-512, AMX and the other native-only sets forced off; on aarch64 the generic armv8 build. The
**native** build is opt-in (``CALM_LLAMA_BUILD=native``): it is smoke-tested, and when it fails
the safe build is made and used by itself, and the fallback is said.

Wheels are kept per variant and flag set in ``<cache>/wheels/<key>/`` (pip's own wheel cache
does not key on ``CMAKE_ARGS``, so it could hand back a native wheel for a safe build), and the
installed build is recorded in ``<cache>/llama-build.json``. Plain Python, no Django.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..env import env_str

SAFE = "safe"
NATIVE = "native"
VARIANTS = (SAFE, NATIVE)
# The baseline extensions of the safe x86-64 build, by their /proc/cpuinfo flag.
X86_BASELINE = (("avx", "GGML_AVX"), ("avx2", "GGML_AVX2"), ("fma", "GGML_FMA"),
                ("f16c", "GGML_F16C"), ("bmi2", "GGML_BMI2"))  # fmt: skip
# Never in the safe build: the sets that crashed, or that not every x86-64 CPU has.
X86_NATIVE_ONLY = ("GGML_AVX512", "GGML_AVX512_VBMI", "GGML_AVX512_VNNI", "GGML_AVX512_BF16",
                   "GGML_AVX_VNNI", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")  # fmt: skip
SMOKE_PROMPT = "def add(a, b):\n    return"
SMOKE_TOKENS = 8
SMOKE_TIMEOUT_S = 180.0


class BuildError(RuntimeError):
    """llama.cpp could not be built or does not generate on this CPU; the message says why."""


@dataclass(frozen=True)
class Host:
    """What a build depends on: the machine and its CPU flags (a test passes a simulated one)."""

    machine: str  # platform.machine(): x86_64, aarch64, arm64, ...
    flags: frozenset[str]

    @classmethod
    def detect(cls, cpuinfo: str | None = None, machine: str | None = None) -> Host:
        machine = (machine or platform.machine()).lower()
        if cpuinfo is None:
            try:
                cpuinfo = Path("/proc/cpuinfo").read_text()
            except OSError:
                cpuinfo = ""
        return cls(machine=machine, flags=frozenset(_cpu_flags(cpuinfo)))

    @property
    def is_x86(self) -> bool:
        return self.machine in ("x86_64", "amd64", "i686", "i386")

    @property
    def is_arm(self) -> bool:
        return self.machine in ("aarch64", "arm64")


def _cpu_flags(cpuinfo: str) -> set[str]:
    """The first processor's flags: x86 ``flags``, ARM ``Features``."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def cmake_args(variant: str, host: Host) -> list[str]:
    """The CMake flags of a build variant on ``host`` (always without the multimodal helper)."""
    if variant not in VARIANTS:
        raise BuildError(f"unknown llama.cpp build {variant!r}: use {' or '.join(VARIANTS)}")
    args = ["-DLLAVA_BUILD=OFF"]
    if variant == NATIVE:
        return [*args, "-DGGML_NATIVE=ON"]
    args.append("-DGGML_NATIVE=OFF")
    if host.is_x86:
        for flag, option in X86_BASELINE:
            args.append(f"-D{option}={'ON' if flag in host.flags else 'OFF'}")
        args += [f"-D{option}=OFF" for option in X86_NATIVE_ONLY]
    elif not host.is_arm:
        raise BuildError(
            f"no safe llama.cpp build is known for {host.machine}: set CALM_LLAMA_BUILD=native "
            "to let llama.cpp detect this CPU, or CALM_LOCAL_MODEL=off"
        )
    return args


def requested_variant() -> str:
    variant = env_str("CALM_LLAMA_BUILD", SAFE).strip().lower()
    if variant not in VARIANTS:
        raise BuildError(f"CALM_LLAMA_BUILD={variant!r}: use {' or '.join(VARIANTS)}")
    return variant


def build_key(variant: str, args: Sequence[str], version: str) -> str:
    digest = hashlib.sha256(" ".join([version, *args]).encode()).hexdigest()[:12]
    return f"{version}-{variant}-{digest}"


# --- the record of what is installed ------------------------------------------------------------


@dataclass
class BuildRecord:
    variant: str
    cmake_args: list[str]
    key: str
    wheel: str
    smoke: dict
    note: str = ""  # e.g. why the native build was given up
    system_info: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def record_path(cache_dir: Path) -> Path:
    return cache_dir / "llama-build.json"


def read_record(cache_dir: Path) -> BuildRecord | None:
    try:
        return BuildRecord(**json.loads(record_path(cache_dir).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_record(cache_dir: Path, record: BuildRecord) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = record_path(cache_dir)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=2))
    os.replace(tmp, path)


# --- building and installing ---------------------------------------------------------------------


def build_wheel(
    requirement: str,
    args: Sequence[str],
    directory: Path,
    *,
    pip: Sequence[str] | None = None,
    run: Callable = subprocess.run,
) -> Path:
    """The wheel of ``requirement`` built with ``args`` in ``directory`` (reused when there)."""
    existing = sorted(directory.glob("llama_cpp_python-*.whl"))
    if existing:
        return existing[-1]
    directory.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CMAKE_ARGS": " ".join(args), "FORCE_CMAKE": "1"}
    argv = [*(pip or (sys.executable, "-m", "pip")), "wheel", "--no-deps", "--no-cache-dir",
            "--no-binary", "llama-cpp-python", "-w", str(directory), requirement]  # fmt: skip
    result = run(argv, env=env, check=False)
    if result.returncode != 0:
        raise BuildError(
            f"building {requirement} with CMAKE_ARGS='{' '.join(args)}' failed (exit "
            f"{result.returncode}); it needs a C++ compiler and cmake (Debian: apt-get install "
            "build-essential cmake)"
        )
    built = sorted(directory.glob("llama_cpp_python-*.whl"))
    if not built:
        raise BuildError(f"pip reported success but left no wheel in {directory}")
    return built[-1]


def install_wheel(
    wheel: Path,
    requirement: str,
    *,
    pip: Sequence[str] | None = None,
    run: Callable = subprocess.run,
) -> None:
    """Install this exact wheel (replacing any other build) and the server extra's packages."""
    base = [*(pip or (sys.executable, "-m", "pip")), "install"]
    steps = [
        [*base, "--force-reinstall", "--no-deps", str(wheel)],
        [*base, "--find-links", str(wheel.parent), requirement],
    ]
    for argv in steps:
        result = run(argv, check=False)
        if result.returncode != 0:
            raise BuildError(f"installing {wheel.name} failed (exit {result.returncode})")


# --- the smoke test -------------------------------------------------------------------------------

_SMOKE_SCRIPT = """
import json, sys, time
import llama_cpp
info = llama_cpp.llama_print_system_info()
info = info.decode() if isinstance(info, bytes) else str(info)
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=256, n_threads=int(sys.argv[3]),
                      verbose=False)
start = time.monotonic()
out = llm(sys.argv[2], max_tokens=int(sys.argv[4]), temperature=0.0)
elapsed = time.monotonic() - start
n = out["usage"]["completion_tokens"]
print(json.dumps({"tokens": n, "seconds": elapsed, "text": out["choices"][0]["text"],
                  "system_info": info.strip()}))
"""


def smoke_test(
    model_path: Path,
    *,
    python: str | None = None,
    threads: int = 2,
    tokens: int = SMOKE_TOKENS,
    timeout_s: float = SMOKE_TIMEOUT_S,
) -> dict:
    """Load the model and generate a few tokens in a child process (a build that crashes the
    CPU kills the child, not us). Returns {ok, tokens, tokens_per_s, system_info} or, on
    failure, {ok: False, error} naming the signal or the error."""
    argv = [python or sys.executable, "-c", _SMOKE_SCRIPT, str(model_path), SMOKE_PROMPT,
            str(threads), str(tokens)]  # fmt: skip
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"no tokens in {timeout_s:.0f} s"}
    if proc.returncode != 0:
        return {"ok": False, "error": _death(proc.returncode, proc.stderr)}
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"ok": False, "error": f"unreadable smoke output: {proc.stdout[-300:]!r}"}
    if not data.get("tokens"):
        return {"ok": False, "error": "the model generated no tokens", **data}
    rate = data["tokens"] / data["seconds"] if data.get("seconds") else None
    return {"ok": True, "tokens": data["tokens"], "tokens_per_s": rate,
            "system_info": data.get("system_info", "")}  # fmt: skip


def _death(returncode: int, stderr: str) -> str:
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"the process died with signal {-returncode} ({name})"
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return f"the process exited with code {returncode}{': ' + tail if tail else ''}"


def ensure_build(
    model_path: Path,
    cache_dir: Path,
    requirement: str,
    version: str,
    *,
    variant: str | None = None,
    host: Host | None = None,
    echo: Callable[[str], None] = print,
    installed: Callable[[], str | None] = lambda: None,
    build: Callable = build_wheel,
    install: Callable = install_wheel,
    smoke: Callable = smoke_test,
) -> BuildRecord:
    """Make sure a llama-cpp-python build that generates on this CPU is installed.

    The build is smoke-tested every time (a few tokens, seconds). When the requested variant
    is native and fails, the safe build is made, installed and tested instead, and the record's
    ``note`` says so. A safe build that fails raises ``BuildError`` with the reason."""
    host = host or Host.detect()
    variant = variant or requested_variant()
    order = [variant] if variant == SAFE else [NATIVE, SAFE]
    notes = []
    for attempt in order:
        args = cmake_args(attempt, host)
        key = build_key(attempt, args, version)
        record = read_record(cache_dir)
        current = record is not None and record.key == key and installed() == version
        if not current:
            echo(f"llama.cpp: {attempt} build ({' '.join(args)})")
            started = time.monotonic()
            wheel = build(requirement, args, cache_dir / "wheels" / key)
            install(wheel, requirement)
            echo(f"llama.cpp: {attempt} build installed in {time.monotonic() - started:.0f} s")
        else:
            wheel = Path(record.wheel)
        result = smoke(model_path)
        if result.get("ok"):
            rate = result.get("tokens_per_s")
            echo(
                f"llama.cpp: smoke test passed ({attempt} build, {rate:.1f} tokens/s)"
                if rate
                else f"llama.cpp: smoke test passed ({attempt})"
            )
            final = BuildRecord(
                variant=attempt, cmake_args=list(args), key=key, wheel=str(wheel),
                smoke=result, note="; ".join(notes),
                system_info=result.get("system_info", ""),
            )  # fmt: skip
            write_record(cache_dir, final)
            return final
        message = f"the {attempt} llama.cpp build failed its smoke test: {result.get('error')}"
        notes.append(message)
        echo(f"llama.cpp: {message}")
        if attempt == NATIVE:
            echo("llama.cpp: falling back to the safe build by itself")
    raise BuildError(
        "; ".join(notes) + ". The model cannot be served on this CPU: report the message above "
        "(and `python -c 'import llama_cpp; print(llama_cpp.llama_print_system_info())'`), or "
        "run without it (CALM_LOCAL_MODEL=off)"
    )
