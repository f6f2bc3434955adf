"""Run the whole app on one machine: web server, one Celery worker for all queues, beat, and
the embedded default model (llama.cpp's own server, llama-server, on loopback) when prepared.

Output from each process is prefixed with its name. Ctrl-C (or SIGTERM) stops all of them:
each gets SIGTERM in its own process group, then SIGKILL after a grace period. So does a
signal sent to ``make``'s own pid under ``make run`` (by a script or a supervisor, not to the
terminal's whole group as Ctrl-C is): make does not pass SIGINT on, it waits in its handler for
devstack to end, and after SIGTERM it may exit and leave devstack behind. ``ParentWatch`` sees
either (the parent gone, or make handling a stop signal) and devstack stops the stack.

The model server is optional and supervised (``curation.engine.serving.supervisor``): it is
smoke-tested when it starts, restarted with backoff a bounded number of times when it dies, and
its state is shown in the header badge and named in the error of any job that finds it down.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand

from calm_studio.queues import ALL_QUEUES
from curation.engine.serving import local_model
from curation.engine.serving.embedded import (
    Preparation,
    embedded_command,
    needs_preparing,
    supervise_embedded,
)
from curation.engine.serving.supervisor import Supervisor, write_status

GRACE_S = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ParentWatch:
    """Whether the process that started devstack is gone or, when it is make, has received a
    stop signal. A handler that runs has its signal blocked, and make's also puts the default
    action back: both show in /proc (Linux), which is all devstack can see of a signal sent to
    another pid. Only make is read this way: a shell may block signals for its own reasons."""

    def __init__(self) -> None:
        self.pid = os.getppid()
        self.is_make = self._read("comm") in ("make", "gmake")
        self.caught = self._mask("SigCgt") or 0

    def _read(self, name: str) -> str | None:
        try:
            return (Path("/proc") / str(self.pid) / name).read_text().strip()
        except OSError:
            return None

    def _mask(self, field: str) -> int | None:
        for line in (self._read("status") or "").splitlines():
            if line.startswith(field + ":"):
                return int(line.split(":", 1)[1], 16)
        return None

    def why_stop(self) -> str | None:
        if os.getppid() != self.pid:
            return f"the process that started devstack ({self.pid}) ended"
        if not self.is_make:
            return None
        blocked, caught = self._mask("SigBlk"), self._mask("SigCgt")
        if blocked is None or caught is None:
            return None
        for signum in STOP_SIGNALS:
            bit = 1 << (signum - 1)
            if self.caught & bit and (blocked & bit or not caught & bit):
                return f"make ({self.pid}) received {signum.name}"
        return None


class Command(BaseCommand):
    help = (
        "Start the web server, a worker for all queues, beat and the embedded model server; "
        "Ctrl-C stops everything."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)
        parser.add_argument(
            "--prepare-model",
            action="store_true",
            help="prepare the embedded model beside the app when it is not yet (make run): the "
            "first page does not wait for llama.cpp to compile, the model starts when it is built",
        )

    def handle(
        self, *args, addr: str, concurrency: int, prepare_model: bool = False, **options
    ) -> None:
        python = sys.executable
        parent = ParentWatch()  # make, under `make run`
        stopping = {"flag": False}

        def request_stop(signum, frame) -> None:
            stopping["flag"] = True

        # Before any child starts: a signal in between would end devstack and orphan them.
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        commands = {
            "web": [python, "manage.py", "runserver", "--noreload", addr],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "calm_studio",
                "worker",
                "-l",
                "info",
                "-Q",
                ",".join(ALL_QUEUES),
                "--concurrency",
                str(concurrency),
                "-n",
                "all@%h",
            ],
            "beat": [python, "-m", "celery", "-A", "calm_studio", "beat", "-l", "info"],
        }
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        preparing = prepare_model and needs_preparing()
        model_argv = None if preparing else self._model_command()
        if model_argv is None:  # no stale state from an earlier run in the header badge
            write_status(local_model.status_path(), state="off", name="embedded model")
        procs = {
            name: subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # our own Ctrl-C handling decides when they stop
            )
            for name, cmd in commands.items()
        }
        self.stdout.write(self.style.SUCCESS(f"CALM Studio is starting on http://{addr}/"))
        model = self._supervise_model(model_argv, env) if model_argv else None
        models: list = [model] if model else []
        preparation = self._prepare_model(env, models) if preparing else None
        names = [*procs, *(["model"] if model or preparation else [])]
        self.stdout.write(f"Press Ctrl-C to stop {', '.join(names)}.")
        selector = selectors.DefaultSelector()
        for name, proc in procs.items():
            os.set_blocking(proc.stdout.fileno(), False)
            selector.register(proc.stdout, selectors.EVENT_READ, name)
        try:
            while not stopping["flag"]:
                for key, _ in selector.select(timeout=0.5):
                    self._relay(key.data, key.fileobj)
                dead = [n for n, p in procs.items() if p.poll() is not None]
                if dead:
                    self.stderr.write(f"{', '.join(dead)} exited; stopping the rest.")
                    break
                why = parent.why_stop()
                if why:
                    self.stderr.write(f"{why[0].upper()}{why[1:]}; stopping everything.")
                    break
        finally:
            if preparation:
                preparation.stop()
            for model in models:
                model.stop()
            self._stop_all(procs)
            for key in list(selector.get_map().values()):
                self._relay(key.data, key.fileobj)

    def _model_command(self) -> list[str] | None:
        """The model server's argv, or None (with one line saying why and how to enable it)."""
        return embedded_command(self.stdout.write)

    def _prepare_model(self, env: dict, models: list) -> Preparation:
        """Run ``prepare_model`` beside the app; start the model when it succeeds (into
        ``models``, which the shutdown stops)."""
        self.stdout.write(
            "Embedded model: not prepared yet; preparing it beside the app (the first time, "
            "llama.cpp compiles: minutes). The pages work meanwhile; the header badge says when "
            "the model serves."
        )

        def ready() -> None:
            argv = self._model_command()
            if argv is not None:
                models.append(self._supervise_model(argv, env))

        argv = [sys.executable, "manage.py", "prepare_model"]
        return Preparation(
            argv, on_ready=ready, say=self.stdout.write, warn=self.stderr.write, env=env
        ).start()

    def _supervise_model(self, argv: list[str], env: dict) -> Supervisor:
        """Start the embedded model under its supervisor; say when it is ready or why not."""
        return supervise_embedded(argv, say=self.stdout.write, warn=self.stderr.write, env=env)

    def _relay(self, name: str, stream) -> None:
        try:
            data = stream.read()
        except (BlockingIOError, ValueError):
            return
        if not data:
            return
        for line in data.decode(errors="replace").splitlines():
            self.stdout.write(f"{name:>6} | {line}")

    def _stop_all(self, procs: dict[str, subprocess.Popen]) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        for name, proc in procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in {GRACE_S:.0f} s; killing it.")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.stdout.write("Stopped.")
