"""The data the training package consumes, with loaders that name the line of a bad record.

Token-level SFT JSONL (one object per line; the app's dataset export writes it):

    {"id": "traj-17", "input_ids": [...], "labels": [...], "weight": 1.0}
    {"id": "traj-18", "input_ids": [...], "token_tags": [0, 0, 1, 1, 2, 2, 1, 3, 1]}

- ``labels`` are -100 where nothing is trained (prompt, interpreter output, and hint tokens
  when the dataset chose not to train them) and equal to ``input_ids`` elsewhere.
- ``token_tags`` instead: one tag per token, 0 prompt, 1 model, 2 interpreter, 3 hint
  (``curation.engine.Tag``); labels are built here, hints trained only with ``train_on_hints``.
- ``weight`` (optional, default 1, finite, >= 0) is a per-record quality weight; ``id`` is
  optional (default ``line-N``).

Problems JSONL (GRPO prompts and evaluation; the uniform benchmark schema):

    {"id": "nl4opt-0000", "benchmark": "NL4Opt", "question": "...", "answer": 1500.0,
     "answer_status": "value"}

``answer`` is null when the correct response is "no optimal solution"; ``answer_status`` is
"value" or another marker ("no_best_solution", "infeasible_marker", ...). Other keys are ignored.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

IGNORE_INDEX = -100
TAG_PROMPT, TAG_MODEL, TAG_INTERPRETER, TAG_HINT = 0, 1, 2, 3


class DataError(ValueError):
    """A record that cannot be used, with the file and line it came from."""

    def __init__(self, path: str | os.PathLike, line: int, message: str):
        self.path, self.line = str(path), line
        super().__init__(f"{path}:{line}: {message}")


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, object)`` per non-blank line; a line that is not a JSON object raises
    ``DataError`` naming it."""
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(path, number, f"not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(path, number, "expected a JSON object")
            yield number, obj


# --- SFT records ------------------------------------------------------------------------------


def labels_from_tags(
    input_ids: Sequence[int], tags: Sequence[int], *, train_on_hints: bool = False
) -> list[int]:
    """Labels from per-token tags: the model's tokens (and hints with ``train_on_hints``) keep
    their id, everything else (prompt, interpreter output) is -100."""
    if len(input_ids) != len(tags):
        raise ValueError(f"{len(input_ids)} input_ids but {len(tags)} token_tags")
    trained = {TAG_MODEL, TAG_HINT} if train_on_hints else {TAG_MODEL}
    return [int(i) if t in trained else IGNORE_INDEX for i, t in zip(input_ids, tags, strict=True)]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sft_record(
    obj: dict[str, Any],
    *,
    train_on_hints: bool = False,
    vocab_size: int | None = None,
    default_id: str = "",
) -> dict[str, Any]:
    """Validate one SFT object and return ``{"id", "input_ids", "labels", "weight"}``.
    Raises ``ValueError`` with what is wrong."""
    ids = obj.get("input_ids")
    if not isinstance(ids, list) or not ids:
        raise ValueError("input_ids must be a non-empty list of token ids")
    if not all(_is_int(i) and i >= 0 for i in ids):
        raise ValueError("input_ids must hold non-negative integers")
    if vocab_size is not None and max(ids) >= vocab_size:
        raise ValueError(f"token id {max(ids)} is outside the vocabulary ({vocab_size})")
    if "labels" in obj:
        labels = obj["labels"]
        if not isinstance(labels, list) or len(labels) != len(ids):
            raise ValueError(f"labels must be a list as long as input_ids ({len(ids)})")
        for k, (token, label) in enumerate(zip(ids, labels, strict=True)):
            if not _is_int(label) or (label != IGNORE_INDEX and label != token):
                raise ValueError(
                    f"labels[{k}] is {label!r}: each label is -100 or the token id at that "
                    f"position ({token})"
                )
    elif "token_tags" in obj:
        tags = obj["token_tags"]
        if not isinstance(tags, list) or len(tags) != len(ids):
            raise ValueError(f"token_tags must be a list as long as input_ids ({len(ids)})")
        bad = [t for t in tags if not _is_int(t) or t not in (0, 1, 2, 3)]
        if bad:
            raise ValueError(
                f"token_tags hold 0 prompt, 1 model, 2 interpreter, 3 hint; got {bad[0]!r}"
            )
        labels = labels_from_tags(ids, tags, train_on_hints=train_on_hints)
    else:
        raise ValueError("a record needs labels or token_tags beside input_ids")
    if all(label == IGNORE_INDEX for label in labels):
        raise ValueError("no token is trained (every label is -100)")
    weight = obj.get("weight", 1.0)
    if weight is None:
        weight = 1.0
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise ValueError(f"weight must be a finite number, got {weight!r}")
    if weight < 0:
        raise ValueError(f"weight must be >= 0, got {weight}")
    rid = obj.get("id", default_id)
    if not isinstance(rid, str | int) or isinstance(rid, bool):
        raise ValueError(f"id must be a string, got {rid!r}")
    return {"id": str(rid), "input_ids": list(ids), "labels": list(labels), "weight": float(weight)}


def load_sft_records(
    path: str | os.PathLike, *, train_on_hints: bool = False, vocab_size: int | None = None
) -> list[dict[str, Any]]:
    """Every record of a token-level SFT JSONL file, validated (``DataError`` names the line)."""
    out = []
    for number, obj in read_jsonl(path):
        try:
            out.append(
                sft_record(
                    obj,
                    train_on_hints=train_on_hints,
                    vocab_size=vocab_size,
                    default_id=f"line-{number}",
                )
            )
        except ValueError as exc:
            raise DataError(path, number, str(exc)) from None
    if not out:
        raise DataError(path, 0, "the file holds no records")
    return out


# --- problems ---------------------------------------------------------------------------------

PROBLEM_KEYS = ("id", "benchmark", "question", "answer", "answer_status")


def problem_record(obj: dict[str, Any], *, default_benchmark: str = "") -> dict[str, Any]:
    """Validate one problem object and return it with exactly ``PROBLEM_KEYS`` (and
    ``answer_version`` when the object has one)."""
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a non-empty string")
    pid = obj.get("id")
    if not isinstance(pid, str | int) or isinstance(pid, bool) or str(pid) == "":
        raise ValueError("id must be a non-empty string")
    answer = obj.get("answer")
    if answer is not None and (
        isinstance(answer, bool) or not isinstance(answer, int | float) or not math.isfinite(answer)
    ):
        raise ValueError(f"answer must be a finite number or null, got {answer!r}")
    status = obj.get("answer_status") or ("value" if answer is not None else "no_best_solution")
    if not isinstance(status, str):
        raise ValueError(f"answer_status must be a string, got {status!r}")
    if status == "value" and answer is None:
        raise ValueError('answer_status "value" needs a numeric answer')
    benchmark = obj.get("benchmark") or default_benchmark
    if not isinstance(benchmark, str) or not benchmark:
        raise ValueError("benchmark must be a non-empty string")
    version = obj.get("answer_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValueError(f"answer_version must be an integer or absent, got {version!r}")
    return {
        "id": str(pid),
        "benchmark": benchmark,
        "question": question,
        "answer": None if answer is None else float(answer),
        "answer_status": status,
        # Which version of the reference (CALM Studio writes it); absent in plain files.
        **({"answer_version": version} if version is not None else {}),
    }


def load_problems(
    paths: str | os.PathLike | Sequence[str | os.PathLike], *, limit: int | None = None
) -> list[dict[str, Any]]:
    """Problems from one or more JSONL files (``limit``: at most that many per file). A
    record without ``benchmark`` takes its file's stem; duplicate ids raise."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    out: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path in paths:
        for taken, (number, obj) in enumerate(read_jsonl(path)):
            if limit is not None and taken >= limit:
                break
            try:
                problem = problem_record(obj, default_benchmark=Path(path).stem)
            except ValueError as exc:
                raise DataError(path, number, str(exc)) from None
            key = f"{problem['benchmark']}/{problem['id']}"
            if key in seen:
                raise DataError(path, number, f"duplicate problem id {problem['id']!r}")
            seen[key] = f"{path}:{number}"
            out.append(problem)
    if not out:
        raise DataError(paths[0] if paths else "<none>", 0, "no problems found")
    return out
