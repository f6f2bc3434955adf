"""What all three entry points share: the metrics file a worker tails, graceful cancel on
SIGTERM, and the resolved config saved beside every checkpoint. No heavy imports here."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import math
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRICS_ENV = "CALM_METRICS_FILE"
CONFIG_NAME = "calm_config.yaml"
_SECRETS = ("hub_token", "push_to_hub_token")
# ``phase``: what a run is doing now when steps do not say it (loading the weights, generating
# the first samples, scoring), with its counts; the run page shows it with its elapsed time.
EVENTS = ("start", "phase", "step", "log", "eval", "checkpoint", "done")
DONE_STATUSES = ("completed", "cancelled", "failed")


# --- the metrics file -------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON/YAML-safe copy: NaN and inf become None, enums their value, paths strings."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # a 0-d tensor or numpy scalar
        try:
            return _plain(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


class MetricsWriter:
    """Appends one JSON object per line to a file, flushed per line, for a worker to tail.

    Every event carries ``event`` and ``time`` (Unix seconds) and ``elapsed_s`` (since this
    writer was made). ``path`` None (and no ``CALM_METRICS_FILE``) makes a writer that only
    keeps ``last``. Only the main process of a multi-process run should write (``enabled``).
    """

    def __init__(self, path: str | os.PathLike | None = None, *, enabled: bool = True):
        path = path or os.environ.get(METRICS_ENV) or None
        self.path = Path(path) if path else None
        self.enabled = enabled
        self.started = time.time()
        self.last: dict[str, Any] | None = None
        self._lock = threading.Lock()
        if self.path is not None and enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        if event not in EVENTS:
            raise ValueError(f"unknown metrics event {event!r} (one of {', '.join(EVENTS)})")
        now = time.time()
        record = {"event": event, **_plain(fields)}
        record.setdefault("time", round(now, 3))
        record.setdefault("elapsed_s", round(now - self.started, 3))
        self.last = record
        if self.path is not None and self.enabled:
            line = json.dumps(record, allow_nan=False, ensure_ascii=False)
            # Open per line: a tailing worker sees whole lines, and a crash loses none.
            with self._lock, self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
        return record

    def done(self, status: str, *, error: BaseException | None = None, **fields: Any) -> dict:
        """The run's last event, written here only, for every script (sft and grpo through
        ``run_training``, evaluate): ``status`` (completed, cancelled or failed),
        ``cancelled``, and for a failure ``error`` (the exception's type and message) and the
        end of its ``traceback``; then ``fields`` (step, output_dir, ...) in the order given."""
        if status not in DONE_STATUSES:
            raise ValueError(f"unknown run status {status!r} (one of {', '.join(DONE_STATUSES)})")
        failure = {}
        if error is not None:
            failure = {
                "error": f"{type(error).__name__}: {error}",
                "traceback": "".join(traceback.format_exception(error, limit=20))[-4000:],
            }
        return self.emit(
            "done", status=status, cancelled=status == "cancelled", **failure, **fields
        )


def read_events(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The events of a metrics file (a torn last line, still being written, is skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


# --- graceful cancel --------------------------------------------------------------------------


class CancelToken:
    """Set by SIGTERM (``install``) or ``cancel()``; training stops at the next step with a
    checkpoint, evaluation after the current batch. A second SIGTERM kills the process."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = self.reason or reason
        self._event.set()

    def install(self, signals: Iterable[int] = (signal.SIGTERM,)) -> CancelToken:
        # signal.signal only works in the main thread (a test may build a trainer elsewhere).
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in signals:
            signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.cancelled:  # asked twice: stop now, the default way
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        log.warning("signal %s received: stopping at the next step with a checkpoint", signum)
        self.cancel(f"signal {signal.Signals(signum).name}")


# --- the resolved config ----------------------------------------------------------------------


def resolved_config(*args_objects: Any) -> dict[str, Any]:
    """One flat mapping of every argument of the parsed dataclasses, as ``--config`` takes it
    back (TrlParser reads a flat YAML). TrainingArguments go through their ``to_dict``."""
    out: dict[str, Any] = {}
    for obj in args_objects:
        if obj is None:
            continue
        if hasattr(obj, "to_dict"):
            values = obj.to_dict()
            # to_dict() masks every "*_token" field; only the hub token is a secret.
            for key, value in values.items():
                if key.endswith("_token") and key not in _SECRETS and isinstance(value, str):
                    values[key] = getattr(obj, key, value)
        elif dataclasses.is_dataclass(obj):
            values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
        else:
            values = dict(obj)
        for key, value in values.items():
            if key.startswith("_"):
                continue
            out[key] = _plain(value)
    # Secrets never land on disk beside a checkpoint.
    for key in _SECRETS:
        if out.get(key):
            out[key] = None
    return out


def save_config(directory: str | os.PathLike, config: dict[str, Any], **meta: Any) -> Path:
    """Write ``config`` as YAML (``calm_config.yaml``) into ``directory``. ``meta`` (what ran,
    library versions) goes into comment lines, so ``--config`` still reads the file back."""
    import yaml

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG_NAME
    header = "".join(f"# {k}: {json.dumps(_plain(v))}\n" for k, v in meta.items())
    body = yaml.safe_dump(_plain(config), sort_keys=True, allow_unicode=True)
    path.write_text(header + body, encoding="utf-8")
    return path


def library_versions() -> dict[str, str]:
    """Versions of the training stack, for the resolved config's header."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` folder under ``output_dir`` (None when there is none)."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = [
        p for p in root.iterdir() if p.is_dir() and p.name.startswith("checkpoint-")
        and p.name.split("-", 1)[1].isascii() and p.name.split("-", 1)[1].isdigit()
    ]  # fmt: skip
    if not found:
        return None
    return str(max(found, key=lambda p: int(p.name.split("-", 1)[1])))


# --- a training run ---------------------------------------------------------------------------


def run_training(kind: str, trainer_builder, args_tuple, *, metrics_file: str | None) -> int:
    """Train with events, cancel and config saving; shared by ``sft`` and ``grpo``. Returns
    the exit code (0 when completed or cancelled)."""
    training_args = args_tuple[1]
    # Only rank 0 writes events (accelerate/torchrun set RANK on every process).
    metrics = MetricsWriter(metrics_file, enabled=os.environ.get("RANK", "0") == "0")
    cancel = CancelToken().install()
    config = resolved_config(*args_tuple)
    metrics.emit(
        "start",
        kind=kind,
        output_dir=training_args.output_dir,
        max_steps=training_args.max_steps,
        config=config,
    )
    trainer = None
    try:
        metrics.emit("phase", phase="loading", model=config.get("model_name_or_path"))
        trainer = trainer_builder(*args_tuple, metrics=metrics, cancel=cancel)
        if trainer.is_world_process_zero():
            save_config(training_args.output_dir, config, kind=kind, **library_versions())
        metrics.emit("phase", phase="training", max_steps=training_args.max_steps)
        trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        state = trainer.state
        if cancel.cancelled:
            metrics.done(
                "cancelled",
                reason=cancel.reason,
                step=state.global_step,
                max_steps=state.max_steps,
                epoch=state.epoch,
                output_dir=training_args.output_dir,
                checkpoint=last_checkpoint(training_args.output_dir),
            )
            return 0
        trainer.save_model(training_args.output_dir)
        if trainer.is_world_process_zero():
            save_config(training_args.output_dir, config, kind=kind, **library_versions())
        metrics.done(
            "completed",
            step=state.global_step,
            max_steps=state.max_steps,
            epoch=state.epoch,
            output_dir=training_args.output_dir,
            checkpoint=last_checkpoint(training_args.output_dir),
        )
        return 0
    except Exception as exc:
        metrics.done(
            "failed",
            error=exc,
            step=getattr(getattr(trainer, "state", None), "global_step", 0),
            output_dir=training_args.output_dir,
        )
        raise
