"""Run the embedded model server in the foreground, exactly as ``devstack`` starts it: the same
command line (llama-server with the slots, context and threads from the environment), the same
supervisor (smoke test, restarts, the status file the app reads). For scripts, and for serving
the model on a machine of its own (``--host 0.0.0.0``). Ctrl-C or SIGTERM stops it.
"""

from __future__ import annotations

import os
import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from curation.engine.serving import local_model
from curation.engine.serving.embedded import embedded_command, supervise_embedded


class Command(BaseCommand):
    help = "Run the embedded model server (llama-server) in the foreground, supervised."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--port",
            type=int,
            help=f"default: $CALM_LOCAL_MODEL_PORT or {local_model.DEFAULT_PORT}",
        )
        parser.add_argument(
            "--host",
            default=local_model.DEFAULT_HOST,
            help="the address to listen on (default: loopback only)",
        )

    def handle(self, *args, port: int | None, host: str, **options) -> None:
        reasons: list[str] = []
        argv = embedded_command(reasons.append, port=port)
        if argv is None:
            raise CommandError(" ".join(reasons) or "the embedded model cannot start")
        if host != local_model.DEFAULT_HOST:
            argv[argv.index("--host") + 1] = host
        self.stdout.write(" ".join(argv))
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: stop.set())
        supervisor = supervise_embedded(
            argv,
            say=self.stdout.write,
            warn=self.stderr.write,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            port=port,
        )
        try:
            while not stop.wait(0.5):
                if supervisor.state == "failed":
                    raise CommandError("the model server keeps dying (see the lines above)")
        finally:
            supervisor.stop()
            self.stdout.write("Stopped.")
