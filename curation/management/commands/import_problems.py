from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from curation.formats.problem_files import ImportFileError, parse_problem_file
from curation.services.problems import ImportSummary, problems_import, problems_import_check


class Command(BaseCommand):
    help = (
        "Import problems from JSONL or JSON-array files (uniform benchmark schema or raw "
        "en_question/en_answer, question/answer). Idempotent; atomic per file."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument(
            "--benchmark", help="benchmark name for every record (default: the record's own)"
        )

    def handle(self, *args, paths: list[Path], benchmark: str | None, **options) -> None:
        started = time.perf_counter()
        total = ImportSummary()
        failures: list[str] = []
        show_bar = options["verbosity"] > 0
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError as exc:
                failures.append(f"{path}: cannot read ({exc.strerror})")
                continue
            try:
                parsed = parse_problem_file(data, filename=str(path), default_benchmark=benchmark)
                problems_import_check(records=parsed.records, filename=parsed.filename)
            except ImportFileError as exc:
                failures.append(str(exc))
                continue
            with tqdm(
                total=len(parsed.records), desc=path.name, unit="rec", disable=not show_bar
            ) as bar:

                def progress(done: int, _total: int, bar=bar) -> None:
                    bar.update(done - bar.n)

                summary = problems_import(
                    records=parsed.records, progress=progress, source=path.name
                )
            total.merge(summary)

        self._print_summary(total, time.perf_counter() - started)
        if failures:
            for failure in failures:
                self.stderr.write(self.style.ERROR(f"Not imported: {failure}"))
            raise CommandError(f"{len(failures)} file(s) imported nothing; see above.")

    def _print_summary(self, summary: ImportSummary, seconds: float) -> None:
        rows = summary.as_rows()
        if not rows:
            return
        width = max(len("benchmark"), *(len(r["benchmark"]) for r in rows))
        header = (
            f"{'benchmark':<{width}}  {'created':>8} {'updated':>8} {'unchanged':>9} {'total':>7}"
        )
        self.stdout.write(header)
        for r in rows:
            self.stdout.write(
                f"{r['benchmark']:<{width}}  {r['created']:>8} {r['updated']:>8} "
                f"{r['unchanged']:>9} {r['total']:>7}"
            )
        t = summary.totals()
        self.stdout.write(
            f"{'all':<{width}}  {t['created']:>8} {t['updated']:>8} {t['unchanged']:>9} "
            f"{sum(t.values()):>7}   ({seconds:.2f} s)"
        )
