"""Run the whole app on one machine: web server, one Celery worker for all queues, beat, and
the embedded default model (llama.cpp's OpenAI-compatible server on loopback) when prepared.

Output from each process is prefixed with its name. Ctrl-C (or SIGTERM) stops all of them:
each gets SIGTERM in its own process group, then SIGKILL after a grace period. The model server
is optional: if it exits, the rest keeps running without it.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

from django.core.management.base import BaseCommand

from calm_studio import local_model
from calm_studio.queues import ALL_QUEUES

GRACE_S = 10.0
OPTIONAL = {"model"}  # processes whose exit does not stop the others
MODEL_READY_TIMEOUT_S = 300.0


class Command(BaseCommand):
    help = (
        "Start the web server, a worker for all queues, beat and the embedded model server; "
        "Ctrl-C stops everything."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, addr: str, concurrency: int, **options) -> None:
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
        model_argv = self._model_command()
        if model_argv:
            commands["model"] = model_argv
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
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
        if "model" in procs:
            self._announce_when_ready(procs["model"])
        self.stdout.write(f"Press Ctrl-C to stop {', '.join(procs)}.")
        selector = selectors.DefaultSelector()
        for name, proc in procs.items():
            os.set_blocking(proc.stdout.fileno(), False)
            selector.register(proc.stdout, selectors.EVENT_READ, name)
        try:
            while not stopping["flag"]:
                for key, _ in selector.select(timeout=0.5):
                    self._relay(key.data, key.fileobj)
                dead = [n for n, p in procs.items() if p.poll() is not None]
                for name in [n for n in dead if n in OPTIONAL]:
                    proc = procs.pop(name)
                    self._relay(name, proc.stdout)
                    selector.unregister(proc.stdout)
                    self.stderr.write(
                        f"{name} exited (code {proc.returncode}); the app keeps running "
                        "without the embedded model."
                    )
                    dead.remove(name)
                if dead:
                    self.stderr.write(f"{', '.join(dead)} exited; stopping the rest.")
                    break
        finally:
            self._stop_all(procs)
            for key in list(selector.get_map().values()):
                self._relay(key.data, key.fileobj)

    def _model_command(self) -> list[str] | None:
        """The model server's argv, or None (with one line saying why and how to enable it)."""
        if local_model.selected_model_name() is None:
            self.stdout.write("Embedded model: off (CALM_LOCAL_MODEL=off).")
            return None
        try:
            spec = local_model.get_model()
        except local_model.EnvError as exc:
            self.stdout.write(f"Embedded model: not starting: {exc}.")
            return None
        hint = (
            "`make run` prepares it by default (or run `python manage.py prepare_model`); "
            "CALM_LOCAL_MODEL=off disables it."
        )
        if not local_model.is_prepared(spec):
            self.stdout.write(f"Embedded model: {spec.name} is not prepared, not starting. {hint}")
            return None
        if not local_model.llama_cpp_available():
            self.stdout.write(
                f"Embedded model: llama-cpp-python is not installed, not starting. {hint}"
            )
            return None
        port = local_model.port()
        with socket.socket() as probe:
            if probe.connect_ex((local_model.DEFAULT_HOST, port)) == 0:
                self.stdout.write(
                    f"Embedded model: port {port} is already in use, not starting "
                    "(CALM_LOCAL_MODEL_PORT picks another)."
                )
                return None
        return local_model.command_for(spec)

    def _announce_when_ready(self, proc: subprocess.Popen) -> None:
        url = local_model.base_url()
        name = local_model.get_model().name
        started = time.monotonic()

        def wait() -> None:
            try:
                local_model.wait_ready(
                    url, MODEL_READY_TIMEOUT_S, alive=lambda: proc.poll() is None
                )
            except (TimeoutError, local_model.ModelError):
                return
            self.stdout.write(
                self.style.SUCCESS(
                    f" model | {name} is serving at {url} "
                    f"(ready in {time.monotonic() - started:.1f} s)"
                )
            )

        threading.Thread(target=wait, name="model-ready", daemon=True).start()

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
