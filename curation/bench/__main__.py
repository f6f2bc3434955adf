"""python -m curation.bench review [--steps 200] [--users 20] [--seconds 20] [--json]
python -m curation.bench calm [--problems 200] [--concurrency 32] [--in-flight 48] [--json]
python -m curation.bench rejudge [--benchmarks 5] [--problems 400] [--samples 8] [--json]
python -m curation.bench loop [--benchmark NAME | --problems FILE] [--limit N]
                              [--max-interventions 3] [--reasoner embedded|URL[#model]|PATH]
                              [--intervener ...] [--json]
python -m curation.bench serve [--url URL] [--compare URL[#model]] [--json] [--out FILE]
python -m curation.bench verdicts --run DIR [--intervener ...] [--repeats 2] [--json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curation.bench")
    sub = parser.add_subparsers(dest="which", required=True)
    review = sub.add_parser("review", help="trajectory page render time and a reviewer load run")
    review.add_argument("--steps", type=int, default=200)
    review.add_argument("--baseline-steps", type=int, default=20)
    review.add_argument("--renders", type=int, default=40)
    review.add_argument("--users", type=int, default=20)
    review.add_argument("--seconds", type=float, default=20.0)
    review.add_argument("--think", type=float, default=1.0, help="pause between actions (s)")
    review.add_argument("--json", action="store_true")
    review.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    calm = sub.add_parser("calm", help="CALM batch bookkeeping and requests in flight")
    calm.add_argument("--problems", type=int, default=200)
    calm.add_argument("--concurrency", type=int, default=32)
    calm.add_argument("--in-flight", type=int, default=48)
    calm.add_argument("--delay", type=float, default=2.0, help="the slow endpoint's latency (s)")
    calm.add_argument("--json", action="store_true")
    rejudge = sub.add_parser("rejudge", help="re-judging a stored evaluation under another rule")
    rejudge.add_argument("--benchmarks", type=int, default=5)
    rejudge.add_argument("--problems", type=int, default=400, help="per benchmark")
    rejudge.add_argument("--samples", type=int, default=8, help="stored answers per problem")
    rejudge.add_argument("--repeat", type=int, default=3)
    rejudge.add_argument("--json", action="store_true")
    loop = sub.add_parser("loop", help="the CALM loop on real endpoints (the embedded model)")
    loop.add_argument("--benchmark", help="a file of the benchmarks folder, e.g. nl4opt")
    loop.add_argument("--problems", help="any file the importer reads (problems outside the bank)")
    loop.add_argument("--limit", type=int, help="the first N problems")
    loop.add_argument("--max-interventions", type=int, default=3)
    loop.add_argument("--reasoner", default="embedded", help="embedded | URL[#model] | PATH")
    loop.add_argument("--intervener", default="embedded", help="embedded | URL[#model] | PATH")
    loop.add_argument("--tokenizer", default="", help="local tokenizer for a URL endpoint")
    loop.add_argument("--concurrency", type=int, default=4, help="items advanced per round")
    loop.add_argument(
        "--intervener-mode", choices=["both", "checks", "llm"],
        help="checks over the execution record, the LLM, or both (default: CALM_INTERVENER_MODE)",
    )  # fmt: skip
    loop.add_argument("--out", help="where the run is kept (default var/bench/loop-<time>)")
    loop.add_argument("--json", action="store_true")
    loop.add_argument(
        "--report", metavar="DIR", help="print the figures of a kept run (also one cut short)"
    )
    serve = sub.add_parser("serve", help="the embedded model server's speed, side by side")
    serve.add_argument("--url", help="a running server (default: start the embedded one)")
    serve.add_argument("--compare", help="another server, URL[#model], measured the same way")
    serve.add_argument("--decode-tokens", type=int, default=128)
    serve.add_argument("--out", help="write the figures as JSON here")
    serve.add_argument("--json", action="store_true")
    verdicts = sub.add_parser(
        "verdicts", help="the Intervener told the answer matches, or judging: side by side"
    )
    source = verdicts.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a kept loop run (its loop.sqlite3)")
    source.add_argument(
        "--trajectories", nargs="+", metavar="FILE",
        help="exported trajectories (a kept run's trajectories.jsonl), loaded afresh",
    )  # fmt: skip
    verdicts.add_argument("--out", help="where the comparison goes (default: the --run folder)")
    verdicts.add_argument("--intervener", help="embedded | URL[#model] | PATH (default: the run's)")
    verdicts.add_argument("--tokenizer", default="", help="local tokenizer for a URL endpoint")
    verdicts.add_argument("--limit", type=int, help="the first N correct trajectories")
    verdicts.add_argument("--repeats", type=int, default=2, help="verdicts per prompt")
    verdicts.add_argument("--concurrency", type=int, default=4, help="requests at once")
    verdicts.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    # A throwaway var dir and database: a benchmark never writes into the real one. The loop
    # keeps its database beside its other results, so every trajectory can be looked at.
    var_dir = tempfile.mkdtemp(prefix="calm-bench-")
    os.environ["CALM_VAR_DIR"] = var_dir
    database_url = getattr(args, "database_url", None)
    out = None
    if args.which == "loop":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        default = Path(__file__).resolve().parents[2] / "var" / "bench" / f"loop-{stamp}"
        out = Path(args.report or args.out or default)
        if args.report and not (out / "loop.sqlite3").is_file():
            parser.error(f"--report {out}: no loop.sqlite3 there")
        out.mkdir(parents=True, exist_ok=True)
        database_url = f"sqlite:///{out / 'loop.sqlite3'}"
    if args.which == "verdicts" and args.run:
        if not (Path(args.run) / "loop.sqlite3").is_file():
            parser.error(f"--run {args.run}: no loop.sqlite3 there")
        database_url = f"sqlite:///{Path(args.run) / 'loop.sqlite3'}"
    if args.which == "verdicts" and args.trajectories and not args.out:
        args.out = str(
            Path(__file__).resolve().parents[2] / "var" / "bench"
            / f"verdicts-{time.strftime('%Y%m%d-%H%M%S')}"
        )  # fmt: skip
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{var_dir}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "calm_studio.settings")
    import django

    django.setup()
    if args.which == "review":
        from .review import run

        return run(args)
    if args.which == "calm":
        from .calm import run

        return run(args)
    if args.which == "serve":
        from .serve import run

        return run(args)
    if args.which == "rejudge":
        from .rejudge import run

        return run(args)
    if args.which == "verdicts":
        from .verdicts import run

        return run(args)
    if args.which == "loop":
        from .loop import report, run

        return report(args, out) if args.report else run(args, out)
    return 2


if __name__ == "__main__":
    sys.exit(main())
