"""Freezing golden trajectories into an immutable, versioned training dataset."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction

from ..formats.trajectory_records import trajectory_chat_record, trajectory_token_record
from ..models import DatasetEntry, DatasetVersion, Trajectory
from ..presentation import statistics

FILES = ("tokens.jsonl", "chat.jsonl", "README.md")


class DatasetError(ValueError):
    pass


def dataset_freeze(
    *,
    name: str,
    trajectories,
    note: str = "",
    train_on_hints: bool = True,
    filters: dict | None = None,
    by=None,
) -> DatasetVersion:
    """Snapshot ``trajectories`` (normally ``golden_trajectories(...)``): write the token-level
    and chat JSONL exports and a dataset card, hash them, and record the version."""
    chosen: list[Trajectory] = list(trajectories)
    if not chosen:
        raise DatasetError("no golden trajectory matches: approve some candidates first")
    root = Path(settings.VAR_DIR) / "datasets"
    staging = root / f".staging-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    token_lines = [
        json.dumps(trajectory_token_record(t, train_on_hints=train_on_hints)) for t in chosen
    ]
    chat_lines = [json.dumps(trajectory_chat_record(t), ensure_ascii=False) for t in chosen]
    (staging / "tokens.jsonl").write_text("\n".join(token_lines) + "\n")
    (staging / "chat.jsonl").write_text("\n".join(chat_lines) + "\n")
    digest = hashlib.sha256()
    for line in token_lines + chat_lines:
        digest.update(line.encode())
    content_hash = digest.hexdigest()
    counts = _counts(chosen)
    summary = {
        "token_modification_ratio": statistics.token_modification_ratio(
            {"n_model_tokens": t.n_model_tokens, "n_hint_tokens": t.n_hint_tokens} for t in chosen
        ),
        "code_calls_mean": sum(t.n_code_calls for t in chosen) / len(chosen),
        "train_on_hints": train_on_hints,
    }
    (staging / "README.md").write_text(
        dataset_card(name, note, chosen, counts, summary, content_hash, filters or {})
    )
    with transaction.atomic():
        version = DatasetVersion.objects.create(
            name=name, note=note, train_on_hints=train_on_hints, filters=filters or {},
            content_hash=content_hash, counts=counts, stats=summary, directory="", created_by=by,
        )  # fmt: skip
        DatasetEntry.objects.bulk_create(
            DatasetEntry(version=version, trajectory=t, position=i) for i, t in enumerate(chosen)
        )
        final = root / f"{version.pk}-{content_hash[:12]}"
        staging.rename(final)  # the files appear whole, or not at all
        version.directory = str(final)
        version.save(update_fields=["directory"])
    return version


def _counts(chosen: list[Trajectory]) -> dict:
    benchmarks: dict[str, int] = {}
    for t in chosen:
        benchmarks[t.problem.benchmark.name] = benchmarks.get(t.problem.benchmark.name, 0) + 1
    return {
        "trajectories": len(chosen),
        "problems": len({t.problem_id for t in chosen}),
        "benchmarks": benchmarks,
        "tokens": {
            "prompt": sum(t.n_prompt_tokens for t in chosen),
            "model": sum(t.n_model_tokens for t in chosen),
            "interpreter": sum(t.n_interpreter_tokens for t in chosen),
            "hint": sum(t.n_hint_tokens for t in chosen),
        },
    }


def dataset_card(name, note, chosen, counts, summary, content_hash, filters) -> str:
    """The README of an export: sources, licences, configuration, statistics."""
    sources = {}
    for t in chosen:
        bench = t.problem.benchmark
        key = (bench.name, t.problem.source_repo, t.problem.source_commit)
        sources[key] = bench.licence or "see the benchmark's source"
    tmr = summary["token_modification_ratio"]
    lines = [
        f"# {name}",
        "",
        note or "Golden CALM trajectories: correct, judged flawless, approved by a reviewer.",
        "",
        f"- content hash (sha256 of both exports): `{content_hash}`",
        f"- trajectories: {counts['trajectories']} over {counts['problems']} problems",
        f"- tokens: {json.dumps(counts['tokens'])}",
        f"- token modification ratio: {'n/a' if tmr is None else f'{100 * tmr:.2f}%'}",
        f"- hint tokens trained: {'yes' if summary['train_on_hints'] else 'no'}",
        f"- selection: {json.dumps(filters)}",
        "",
        "## Files",
        "",
        "- `tokens.jsonl`: `input_ids`, `labels` (-100 on the prompt and on interpreter output"
        + ("" if summary["train_on_hints"] else " and on hint tokens")
        + "), `token_tags` (0 prompt, 1 model, 2 interpreter, 3 hint); for `training.scripts.sft`.",
        "- `chat.jsonl`: for reading, not for training (its assistant message holds the"
        " interpreter's output, marked by `interpreter_spans`, and hints in place); one"
        " conversation per line.",
        "",
        'Load with `datasets.load_dataset("json", data_files="tokens.jsonl")`.',
        "",
        "## Sources and licences",
        "",
        "Research use: the problems come from public benchmarks under their own licences.",
        "",
    ]
    for (bench, repo, commit), licence in sorted(sources.items()):
        origin = f"{repo} @ {commit[:12]}" if repo else "CALM Studio"
        lines.append(f"- {bench}: {origin}; licence: {licence}")
    lines.extend(_open_comments_lines(chosen))
    return "\n".join(lines) + "\n"


def _open_comments_lines(chosen) -> list[str]:
    """A golden trajectory that still has open review comments is named in the card."""
    from ..models import Comment

    ids = sorted(
        set(
            Comment.objects.filter(
                trajectory__in=[t.pk for t in chosen], resolved_at=None
            ).values_list("trajectory_id", flat=True)
        )
    )
    if not ids:
        return []
    listed = ", ".join(f"#{i}" for i in ids)
    return ["", "## Open review comments", "",
            f"{len(ids)} trajectories still have open comments: {listed}."]  # fmt: skip


def dataset_file(version: DatasetVersion, name: str) -> Path:
    if name not in FILES:
        raise DatasetError(f"unknown export {name!r}")
    path = Path(version.directory) / name
    if not path.exists():
        raise DatasetError(f"{path} is missing: the export folder was moved or deleted")
    return path
