"""Run the whole app on one machine: web server, one Celery worker for all queues, and beat.

Output from each process is prefixed with its name. Ctrl-C (or SIGTERM) stops all of them:
each gets SIGTERM in its own process group, then SIGKILL after a grace period.
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

GRACE_S = 10.0


class Command(BaseCommand):
    help = "Start the web server, a worker for all queues and beat; Ctrl-C stops everything."

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
        self.stdout.write("Press Ctrl-C to stop the web server, the worker and beat.")
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
            self._stop_all(procs)
            for key in list(selector.get_map().values()):
                self._relay(key.data, key.fileobj)

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
