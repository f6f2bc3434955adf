"""python -m curation.bench review [--steps 200] [--users 20] [--seconds 20] [--json]
python -m curation.bench calm [--problems 200] [--concurrency 32] [--in-flight 48] [--json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile


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
    args = parser.parse_args(argv)

    # A throwaway var dir and database: a benchmark never writes into the real one.
    var_dir = tempfile.mkdtemp(prefix="calm-bench-")
    os.environ["CALM_VAR_DIR"] = var_dir
    database_url = getattr(args, "database_url", None)
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
    return 2


if __name__ == "__main__":
    sys.exit(main())
