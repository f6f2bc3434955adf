"""The detached process that supervises a served checkpoint's llama-server (``gguf_serve``
starts it in a session of its own, so it outlives the job that started it):

    python -m curation.engine.serving.gguf_supervise --status-file S.json --alias NAME \\
        -- <the llama-server argv>

It runs the embedded model's ``Supervisor`` (smoke test, restarts with backoff, the status
file) until SIGTERM, then stops the server. Plain Python, no Django.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from . import local_model
from .gguf_serve import READY_TIMEOUT_S
from .supervisor import Supervisor


def main(argv: list[str] | None = None) -> int:
    """The detached process: supervise the server argv after ``--`` until SIGTERM."""
    parser = argparse.ArgumentParser(description="Supervise a llama-server for a GGUF.")
    parser.add_argument("--status-file", type=Path, required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("server_argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    server_argv = [a for a in args.server_argv if a != "--"] if args.server_argv else []
    if not server_argv:
        parser.error("give the server's argv after --")
    port = int(server_argv[server_argv.index("--port") + 1])
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    supervisor = Supervisor(
        server_argv, base_url=local_model.base_url(port_=port), model=args.alias,
        status_file=args.status_file, name=f"checkpoint ({args.alias})",
        ready_timeout_s=READY_TIMEOUT_S,
        on_output=lambda line: print(f"model | {line}", flush=True),
    ).start()  # fmt: skip
    while not done.wait(1.0):
        if supervisor.state == "failed":
            return 1
    supervisor.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
