"""Run the whole app on one machine: web server, one Celery worker for all queues, beat, and
the embedded default model (llama.cpp's own server, llama-server, on loopback) when prepared.

Output from each process is prefixed with its name. Ctrl-C (or SIGTERM) stops all of them:
each gets SIGTERM in its own process group, then SIGKILL after a grace period. The model server
is optional and supervised (``curation.engine.serving.supervisor``): it is smoke-tested when it
starts, restarted with backoff a bounded number of times when it dies, and its state is shown in the
header badge and named in the error of any job that finds it down.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time

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
        stopping = {"flag": False}

        def request_stop(signum, frame) -> None:
            stopping["flag"] = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
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
