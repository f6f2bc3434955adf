"""Storing imported problems: idempotent and atomic per file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from ..formats.problem_files import ImportFileError, ProblemRecord
from ..models import AnswerVersion, Benchmark, Problem
from ..models.problems import SplitSource, split_for
from .rejudge import problems_rejudge

ProgressFn = Callable[[int, int], None]
_FIELDS = (
    "question",
    "answer",
    "answer_status",
    "source_repo",
    "source_path",
    "source_commit",
    "source_index",
    "source_id",
    "raw",
    "content_hash",
)
_BATCH = 500


@dataclass
class ImportSummary:
    created: Counter = field(default_factory=Counter)
    updated: Counter = field(default_factory=Counter)
    unchanged: Counter = field(default_factory=Counter)
    # Updated problems whose reference answer changes: each gets a new answer version.
    new_answers: Counter = field(default_factory=Counter)
    # Stored trajectories whose correctness changed with those new answers (services/rejudge.py).
    rejudged: int = 0

    def merge(self, other: ImportSummary) -> None:
        self.rejudged += other.rejudged
        self.created.update(other.created)
        self.updated.update(other.updated)
        self.unchanged.update(other.unchanged)
        self.new_answers.update(other.new_answers)

    @property
    def benchmarks(self) -> list[str]:
        return sorted(set(self.created) | set(self.updated) | set(self.unchanged))

    def totals(self) -> dict[str, int]:
        return {
            "created": sum(self.created.values()),
            "updated": sum(self.updated.values()),
            "unchanged": sum(self.unchanged.values()),
        }

    def as_rows(self) -> list[dict]:
        return [
            {
                "benchmark": name,
                "created": self.created[name],
                "updated": self.updated[name],
                "unchanged": self.unchanged[name],
                "new_answers": self.new_answers[name],
                "total": self.created[name] + self.updated[name] + self.unchanged[name],
            }
            for name in self.benchmarks
        ]

    def to_dict(self) -> dict:
        return {"benchmarks": self.as_rows(), "totals": self.totals(), "rejudged": self.rejudged}


def _apply(problem: Problem, record: ProblemRecord) -> None:
    for name in _FIELDS:
        value = record.content_hash if name == "content_hash" else getattr(record, name)
        setattr(problem, name, value)
    # The file's split, when it has one, unless a lead set this problem's; else the hash's.
    if record.split and problem.split_source != SplitSource.LEAD:
        problem.split, problem.split_source = record.split, SplitSource.FILE
    elif not problem.split:
        problem.split, problem.split_source = split_for(problem.question), SplitSource.HASH


def _classify(
    records: list[ProblemRecord], benchmarks: dict[str, Benchmark | None]
) -> tuple[ImportSummary, list[Problem], list[Problem]]:
    """Split records into new and changed problems, counting the unchanged ones."""
    existing: dict[tuple[str, str], Problem] = {}
    for name, bench in benchmarks.items():
        if bench is None:
            continue
        ids = [r.external_id for r in records if r.benchmark == name]
        # Chunked IN lists: SQLite caps the number of query parameters.
        for start in range(0, len(ids), _BATCH):
            for problem in Problem.objects.filter(
                benchmark=bench, external_id__in=ids[start : start + _BATCH]
            ):
                existing[(name, problem.external_id)] = problem
    summary = ImportSummary()
    to_create: list[Problem] = []
    to_update: list[Problem] = []
    now = timezone.now()
    for record in records:
        current = existing.get((record.benchmark, record.external_id))
        if current is None:
            problem = Problem(
                benchmark=benchmarks[record.benchmark], external_id=record.external_id
            )
            _apply(problem, record)
            to_create.append(problem)
            summary.created[record.benchmark] += 1
        elif current.content_hash != record.content_hash:
            if (current.answer, current.answer_status) != (record.answer, record.answer_status):
                summary.new_answers[record.benchmark] += 1
                current.answer_version += 1  # its AnswerVersion row is written with the update
                current._answer_changed = True
            _apply(current, record)
            current.updated_at = now  # bulk_update skips auto_now
            to_update.append(current)
            summary.updated[record.benchmark] += 1
        else:
            summary.unchanged[record.benchmark] += 1
    return summary, to_create, to_update


def problems_import_check(*, records: Iterable[ProblemRecord], filename: str) -> None:
    """Refuse, naming the line and the field, what the file's records cannot store beside what
    the database holds: a new benchmark whose slug another benchmark (stored, or new in the same
    file) already has. The file alone was checked by its parser."""
    first_line: dict[str, int] = {}
    for record in records:
        first_line.setdefault(record.benchmark, record.line)
    existing = set(Benchmark.objects.filter(name__in=first_line).values_list("name", flat=True))
    new = {name: Benchmark.slug_for(name) for name in first_line if name not in existing}
    taken = dict(Benchmark.objects.filter(slug__in=set(new.values())).values_list("slug", "name"))
    for name, line in sorted(first_line.items(), key=lambda item: item[1]):
        if name not in new:
            continue
        slug = new[name]
        if slug in taken:
            raise ImportFileError(
                filename,
                f"field 'benchmark': {name!r} would get the address {slug!r}, which benchmark "
                f"{taken[slug]!r} already has; use that name or one that differs in letters "
                "or digits",
                line,
            )
        taken[slug] = name


def problems_import_plan(*, records: Iterable[ProblemRecord]) -> ImportSummary:
    """What an import would do (created / updated / unchanged per benchmark), writing nothing."""
    records = list(records)
    names = {r.benchmark for r in records}
    found = {b.name: b for b in Benchmark.objects.filter(name__in=names)}
    summary, _, _ = _classify(records, {name: found.get(name) for name in names})
    return summary


def problems_import(
    *, records: Iterable[ProblemRecord], progress: ProgressFn | None = None, source: str = ""
) -> ImportSummary:
    """Store validated records in one transaction: create new ones, update changed ones.

    A new problem's answer is its version 1; an updated problem whose answer changed gets the
    next version and keeps the earlier ones (``source``, the file name, is noted on them).

    A record is keyed by (benchmark, external_id); re-importing the same file changes nothing.
    ``progress(done, total)`` is called as batches are written.
    """
    records = list(records)
    total = len(records)
    # The whole import is one transaction; a correction accepted meanwhile on one of these
    # problems makes the version numbers collide, the unique constraint fails, nothing is stored.
    with transaction.atomic():
        benchmarks: dict[str, Benchmark | None] = {}
        for name in sorted({r.benchmark for r in records}):
            benchmarks[name], _ = Benchmark.objects.get_or_create(name=name)
        summary, to_create, to_update = _classify(records, benchmarks)
        done = 0
        for start in range(0, len(to_create), _BATCH):
            batch = to_create[start : start + _BATCH]
            Problem.objects.bulk_create(batch)
            done += len(batch)
            if progress:
                progress(done, total)
        for start in range(0, len(to_update), _BATCH):
            batch = to_update[start : start + _BATCH]
            Problem.objects.bulk_update(
                batch, [*_FIELDS, "answer_version", "updated_at", "split", "split_source"]
            )
            done += len(batch)
            if progress:
                progress(done, total)
        _versions_write(to_create, to_update, source)
        # The golden filter judges by the current answer: a changed one re-judges trajectories.
        rejudged = problems_rejudge(
            problems=[p for p in to_update if getattr(p, "_answer_changed", False)]
        )
        summary.rejudged = rejudged.changed
        if progress:
            progress(total, total)
    return summary


def problem_split_set(*, problem: Problem, split: str) -> Problem:
    """A lead's split for a problem (train, dev or test); a later import keeps it."""
    from ..models.problems import Split

    if split not in Split.values:
        raise ValueError(f"unknown split {split!r} (train, dev or test)")
    problem.split, problem.split_source = split, SplitSource.LEAD
    problem.save(update_fields=["split", "split_source", "updated_at"])
    return problem


def _versions_write(created: list[Problem], updated: list[Problem], source: str) -> None:
    """Version 1 for each new problem; a new version for each updated one whose answer changed
    (its old answers stay in the history, e.g. when SIRL's corrected files are imported)."""
    rows = []
    for problem in created:
        if problem.pk is None:  # bulk_create returns no keys on some backends: fetch them
            problem.pk = Problem.objects.get(
                benchmark=problem.benchmark, external_id=problem.external_id
            ).pk
        rows.append(_version_row(problem, "imported", source))
    rows += [
        _version_row(p, "re-imported with a changed answer", source)
        for p in updated
        if getattr(p, "_answer_changed", False)
    ]
    AnswerVersion.objects.bulk_create(rows, batch_size=_BATCH)


def _version_row(problem: Problem, what: str, source: str) -> AnswerVersion:
    source = source or problem.source_path
    where = f" from {source}" if source else ""
    return AnswerVersion(
        problem_id=problem.pk, number=problem.answer_version, answer=problem.answer,
        answer_status=problem.answer_status, origin=AnswerVersion.Origin.IMPORT,
        note=f"{what}{where}",
    )  # fmt: skip
