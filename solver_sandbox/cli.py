"""Command line: run one file in the sandbox, or benchmark the pool.

    python -m solver_sandbox run model.py [--timeout 10] [--prior cell1.py ...] [--json]
    python -m solver_sandbox bench [--json]

``run`` prints one JSON object (indented; one line with ``--json``) and exits 0 when the
status is ``ok``, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _read(path: str) -> str:
    return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")


def _run(args: argparse.Namespace) -> int:
    from .limits import Limits
    from .pool import SandboxPool, route

    code = _read(args.file)
    prior = [_read(p) for p in args.prior]
    limits = Limits(timeout_s=args.timeout, memory_mb=args.memory_mb)
    # One job: start only the profile it needs.
    with SandboxPool(slots=1, profiles=(route(code, prior),), isolation=args.isolation) as pool:
        result = pool.run(code, prior_cells=prior, limits=limits)
    out = result.to_dict()
    print(json.dumps(out, separators=(",", ":")) if args.json else json.dumps(out, indent=2))
    return 0 if result.ok else 1


def _bench(args: argparse.Namespace) -> int:
    from .bench import format_report, run_bench

    report = run_bench(warm_jobs=args.jobs, cold_jobs=args.cold_jobs)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solver_sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one Python file in the sandbox")
    run.add_argument("file", help="the code to run ('-' for stdin)")
    run.add_argument("--timeout", type=float, default=10.0, help="wall-clock seconds")
    run.add_argument("--memory-mb", type=int, default=2048)
    run.add_argument("--prior", action="append", default=[], help="an earlier cell, run first")
    run.add_argument("--isolation", choices=("auto", "bwrap", "fallback"), default="auto")
    run.add_argument("--json", action="store_true", help="one line of JSON")
    run.set_defaults(func=_run)
    bench = sub.add_parser("bench", help="cold subprocess vs warm pool vs in-process")
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--jobs", type=int, default=300, help="warm-pool jobs per measurement")
    bench.add_argument("--cold-jobs", type=int, default=8, help="cold subprocess jobs")
    bench.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    return int(args.func(args))
