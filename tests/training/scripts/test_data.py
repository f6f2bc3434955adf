"""The data formats: token-level SFT records and problems, with errors that name the line."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from training.scripts.data import (
    IGNORE_INDEX,
    DataError,
    labels_from_tags,
    load_problems,
    load_sft_records,
)


def _write(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines))  # fmt: skip
    return path


def test_it_builds_labels_from_tags_with_and_without_hints():
    ids, tags = [10, 11, 12, 13, 14, 15], [0, 1, 2, 3, 1, 2]
    assert labels_from_tags(ids, tags) == [-100, 11, -100, -100, 14, -100]
    assert labels_from_tags(ids, tags, train_on_hints=True) == [-100, 11, -100, 13, 14, -100]


def test_it_loads_both_record_shapes_and_defaults_weight_and_id(tmp_path):
    path = _write(tmp_path / "a.jsonl", [
        {"input_ids": [1, 2, 3], "labels": [-100, 2, 3], "id": "x", "weight": 0.5},
        "",
        {"input_ids": [4, 5, 6], "token_tags": [0, 1, 3]},
    ])  # fmt: skip
    first, second = load_sft_records(path, train_on_hints=False)
    assert first == {"id": "x", "input_ids": [1, 2, 3], "labels": [-100, 2, 3], "weight": 0.5}
    assert second["id"] == "line-3" and second["weight"] == 1.0
    assert second["labels"] == [IGNORE_INDEX, 5, IGNORE_INDEX]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"input_ids": [1, 2], "labels": [-100]}, "as long as input_ids"),
        ({"input_ids": [1, 2], "labels": [-100, 7]}, "labels[1] is 7"),
        ({"input_ids": [1, 2], "token_tags": [0, 5]}, "token_tags hold"),
        ({"input_ids": [1, 2], "labels": [-100, -100]}, "no token is trained"),
        ({"input_ids": [1, 2], "labels": [-100, 2], "weight": -1}, "weight must be >= 0"),
        ({"input_ids": [1, 999], "labels": [-100, 999]}, "outside the vocabulary"),
        ({"input_ids": []}, "non-empty list"),
        ({"input_ids": [1, 2]}, "labels or token_tags"),
        ("{not json", "not valid JSON"),
    ],
)
def test_it_names_the_line_of_a_bad_sft_record(tmp_path, bad, message):
    good = {"input_ids": [1, 2], "labels": [-100, 2]}
    path = _write(tmp_path / "bad.jsonl", [good, bad])
    with pytest.raises(DataError, match=rf"bad\.jsonl:2: .*{re.escape(message)}") as info:
        load_sft_records(path, vocab_size=100)
    assert info.value.line == 2


def test_it_loads_problems_with_null_answers_and_file_stem_benchmark(tmp_path):
    path = _write(tmp_path / "toy.jsonl", [
        {"id": "a", "question": "Q1", "answer": 3},
        {"id": "b", "question": "Q2", "answer": None, "answer_status": "no_best_solution",
         "benchmark": "NL4Opt", "raw": {"ignored": True}},
    ])  # fmt: skip
    a, b = load_problems(path)
    assert a == {"id": "a", "benchmark": "toy", "question": "Q1", "answer": 3.0,
                 "answer_status": "value"}  # fmt: skip
    assert b["answer"] is None and b["answer_status"] == "no_best_solution"
    assert b["benchmark"] == "NL4Opt" and "raw" not in b
    assert [p["id"] for p in load_problems(path, limit=1)] == ["a"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"id": "b", "question": "", "answer": 1}, "question"),
        ({"id": "b", "question": "Q", "answer": None, "answer_status": "value"}, "numeric"),
        ({"id": "b", "question": "Q", "answer": "12"}, "finite number or null"),
        ({"id": "a", "question": "Q", "answer": 1}, "duplicate problem id"),
    ],
)
def test_it_names_the_line_of_a_bad_problem(tmp_path, bad, message):
    path = _write(tmp_path / "p.jsonl", [{"id": "a", "question": "Q", "answer": 1}, bad])
    with pytest.raises(DataError, match=rf"p\.jsonl:2: .*{re.escape(message)}"):
        load_problems(path)


def test_it_reads_the_shared_benchmarks_when_present():
    root = Path(os.environ.get("CALM_BENCHMARKS_DIR", "/work/shared/benchmarks"))
    if not (root / "nl4opt.jsonl").exists():
        pytest.skip(f"the shared benchmarks are not at {root}")
    files = sorted(root.glob("*.jsonl"))
    problems = load_problems(files)
    names = {p["benchmark"] for p in problems}
    assert {"NL4Opt", "MAMO-EasyLP", "MAMO-ComplexLP", "IndustryOR"} <= names
    nulls = [p for p in problems if p["answer"] is None]
    assert nulls and all(p["answer_status"] != "value" for p in nulls)
