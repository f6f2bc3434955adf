"""Reading problem files: JSONL or a JSON array, in the uniform benchmark schema or the raw
schemas common in the field (ORLM/SIRL ``en_question``/``en_answer``, plain ``question``/
``answer``), into validated records. No database access here: the service stores them.

Everything is validated before anything is stored, so one bad record rejects its whole file,
and every error names the file and the line.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..models.problems import AnswerStatus, Benchmark, Problem

QUESTION_KEYS = ("question", "en_question", "problem", "Question", "description")
ANSWER_KEYS = ("answer", "en_answer", "ground_truth", "optimal_value", "Answer")
ID_KEYS = ("id", "source_id", "index", "idx")
SENTINELS = (-9999.0, -99999.0)
NO_SOLUTION_STRINGS = {
    "no best solution",
    "no optimal solution",
    "no solution",
    "infeasible",
    "unbounded",
    "none",
    "null",
}
_NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")
# What the columns hold on every database (PostgreSQL enforces them, SQLite does not): a record
# that passes here is one the worker can store.
_TEXT_LIMITS = {
    "benchmark": Benchmark._meta.get_field("name").max_length,
    **{
        name: Problem._meta.get_field(name).max_length
        for name in ("source_repo", "source_path", "source_commit", "source_id")
    },
}
_INTEGER_RANGE = (-(2**31), 2**31 - 1)  # an IntegerField on PostgreSQL
_NO_NUL = "which the database cannot store"


class ImportFileError(ValueError):
    """A file cannot be imported; nothing from it is stored."""

    def __init__(self, filename: str, message: str, line: int | None = None) -> None:
        self.filename = filename
        self.line = line
        self.message = message
        where = f"{filename} line {line}" if line is not None else filename
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class ProblemRecord:
    """One validated problem, ready to store."""

    benchmark: str
    external_id: str
    question: str
    answer: float | None
    answer_status: str
    source_repo: str = ""
    source_path: str = ""
    source_commit: str = ""
    source_index: int | None = None
    source_id: str = ""
    raw: dict = field(default_factory=dict)
    line: int = 0
    split: str = ""  # train / dev / test when the file says; empty: from a hash of the question

    @property
    def content_hash(self) -> str:
        payload = asdict(self)
        payload.pop("line")
        if not payload["split"]:  # files without splits hash as they did before splits existed
            payload.pop("split")
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class ParsedFile:
    filename: str
    records: list[ProblemRecord]
    # Which source field fed each of our fields, e.g. {"question": "en_question"}; per schema
    # seen, with how many records used it, for the upload preview.
    mappings: dict[str, int]


def parse_answer(value: object) -> tuple[float | None, str]:
    """(answer, status) from what sources put in an answer field.

    Raises ValueError for anything that is neither a number nor a known "no solution" marker.
    """
    if value is None:
        return None, AnswerStatus.NO_BEST_SOLUTION
    if isinstance(value, bool):
        raise ValueError(f"answer {value!r} is a boolean, not a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.lower() in NO_SOLUTION_STRINGS:
            return None, AnswerStatus.NO_BEST_SOLUTION
        cleaned = text.replace(",", "").replace("$", "").strip()
        if not _NUMBER.match(cleaned):
            raise ValueError(f"answer {value!r} is not a number or a 'No Best Solution' marker")
        number = float(cleaned)
    else:
        raise ValueError(f"answer has type {type(value).__name__}; expected a number or a string")
    if not math.isfinite(number):
        raise ValueError(f"answer {value!r} is not finite")
    if number in SENTINELS:
        return None, AnswerStatus.INFEASIBLE_MARKER
    return number, AnswerStatus.VALUE


def _first_key(obj: dict, keys: tuple[str, ...]) -> str | None:
    return next((key for key in keys if key in obj), None)


SPLIT_NAMES = {"train": "train", "dev": "dev", "validation": "dev", "valid": "dev", "val": "dev",
               "test": "test"}  # fmt: skip


def _split_of(value: object, filename: str, line: int) -> str:
    """A record's ``split`` field (train, dev or validation, test), or "" when absent."""
    if value in (None, ""):
        return ""
    name = SPLIT_NAMES.get(str(value).strip().lower())
    if name is None:
        raise ImportFileError(filename, f"unknown split {value!r} (train, dev or test)", line)
    return name


def normalize_record(
    obj: object, *, filename: str, line: int, index: int, default_benchmark: str
) -> tuple[ProblemRecord, str]:
    """Validate one decoded JSON value; returns the record and a description of its mapping."""
    if not isinstance(obj, dict):
        raise ImportFileError(filename, f"expected a JSON object, got {type(obj).__name__}", line)
    problem = _unstorable(obj)
    if problem:
        raise ImportFileError(filename, problem, line)
    question_key = _first_key(obj, QUESTION_KEYS)
    if question_key is None:
        raise ImportFileError(
            filename, f"no question field (looked for {', '.join(QUESTION_KEYS)})", line
        )
    question = obj[question_key]
    if not isinstance(question, str) or not question.strip():
        raise ImportFileError(filename, f"field {question_key!r} is empty or not text", line)
    answer_key = _first_key(obj, ANSWER_KEYS)
    if answer_key is None:
        raise ImportFileError(
            filename, f"no answer field (looked for {', '.join(ANSWER_KEYS)})", line
        )
    try:
        answer, status = parse_answer(obj[answer_key])
    except ValueError as exc:
        raise ImportFileError(filename, str(exc), line) from None

    declared = obj.get("answer_status")
    if declared is not None:
        if declared not in AnswerStatus.values:
            raise ImportFileError(filename, f"unknown answer_status {declared!r}", line)
        # The uniform schema states the status; a null answer may carry either marker.
        if (declared == AnswerStatus.VALUE) != (status == AnswerStatus.VALUE):
            raise ImportFileError(
                filename, f"answer_status {declared!r} contradicts answer {obj[answer_key]!r}", line
            )
        status = declared

    benchmark = obj.get("benchmark") or default_benchmark
    if not isinstance(benchmark, str) or not benchmark.strip():
        raise ImportFileError(filename, "benchmark name is empty", line)
    id_key = _first_key(obj, ID_KEYS)
    raw_id = obj.get(id_key) if id_key else None
    stem = Path(filename).stem
    external_id = str(raw_id).strip() if raw_id not in (None, "") else f"{stem}-{index:04d}"
    if len(external_id) > 200:
        raise ImportFileError(filename, "id is longer than 200 characters", line)

    raw = obj.get("raw") if isinstance(obj.get("raw"), dict) else None
    if raw is None:
        # Keep everything but the question, so the original answer string etc. survive.
        raw = {k: v for k, v in obj.items() if k != question_key}
    source_index = obj.get("source_index", index)
    split = _split_of(obj.get("split"), filename, line)
    record = ProblemRecord(
        benchmark=benchmark.strip(),
        external_id=external_id,
        question=question.strip(),
        answer=answer,
        answer_status=status,
        source_repo=str(obj.get("source_repo") or ""),
        source_path=str(obj.get("source_path") or ""),
        source_commit=str(obj.get("source_commit") or ""),
        source_index=source_index if isinstance(source_index, int) else index,
        source_id="" if obj.get("source_id") is None else str(obj.get("source_id")),
        raw=raw,
        line=line,
        split=split,
    )
    mapping = f"question←{question_key}, answer←{answer_key}, id←{id_key or '(position)'}"
    return record, mapping


def _text_problem(text: str) -> str:
    """Why a string is no storable text ("" when it is): a NUL character (PostgreSQL refuses
    it in text and JSON), or a lone surrogate from a ``\\ud800`` escape (not UTF-8 at all)."""
    if "\x00" in text:
        return f"a NUL character, {_NO_NUL}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate ({text[exc.start]!r}), which is not text"
    return ""


def _unstorable(obj: dict) -> str:
    """Why a decoded record holds something no database column takes ("" when nothing): text
    that is no text (``_text_problem``) or a number JSON cannot write (NaN, Infinity: Python's
    decoder accepts them, PostgreSQL's jsonb does not)."""
    for key, value in obj.items():
        if problem := _text_problem(key):
            return f"a field name contains {problem}"
        # Walked with a stack: the decoder allows nesting deeper than a recursive walk would.
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if problem := _text_problem(item):
                    return f"field {key!r} contains {problem}"
            elif isinstance(item, float):
                if not math.isfinite(item):
                    return f"field {key!r} holds a number JSON cannot represent ({item})"
            elif isinstance(item, dict):
                for name in item:
                    if problem := _text_problem(name):
                        return f"field {key!r} has a key with {problem}"
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return ""


def _check_columns(record: ProblemRecord, filename: str) -> None:
    """The record's fields fit their columns (lengths, the integer range)."""
    for name, limit in _TEXT_LIMITS.items():
        value = getattr(record, name)
        if len(value) > limit:
            raise ImportFileError(
                filename,
                f"field {name!r} is longer than {limit} characters (it has {len(value)})",
                record.line,
            )
    low, high = _INTEGER_RANGE
    if record.source_index is not None and not low <= record.source_index <= high:
        raise ImportFileError(
            filename,
            f"field 'source_index' is {record.source_index}, outside {low} to {high}",
            record.line,
        )


def _decode(data: bytes, filename: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ImportFileError(
            filename,
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8",
            line,
        ) from None


def _json_array_items(text: str, filename: str) -> list[tuple[int, object]]:
    """(line, value) for each element of a top-level JSON array, keeping element line numbers."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    items: list[tuple[int, object]] = []
    length = len(text)

    def skip_ws(i: int) -> int:
        while i < length and text[i] in " \t\r\n":
            i += 1
        return i

    # Lines are counted from the previous element on, never from the start of the text again:
    # a count per element made a 1.4 MB array take seconds (quadratic).
    counted_to, lines_before = 0, 0

    def line_at(i: int) -> int:
        nonlocal counted_to, lines_before
        lines_before += text.count("\n", counted_to, i)
        counted_to = i
        return lines_before + 1

    pos = skip_ws(pos)
    if pos < length and text[pos] == "]":
        return items
    while True:
        line = line_at(pos)
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ImportFileError(filename, f"invalid JSON: {exc.msg}", exc.lineno) from None
        except RecursionError:
            raise ImportFileError(filename, "the JSON is nested too deeply", line) from None
        items.append((line, value))
        pos = skip_ws(pos)
        if pos >= length:
            raise ImportFileError(filename, "the JSON array is not closed", text.count("\n") + 1)
        if text[pos] == "]":
            rest = text[pos + 1 :].strip()
            if rest:
                line = line_at(pos)
                raise ImportFileError(filename, "unexpected content after the JSON array", line)
            return items
        if text[pos] != ",":
            line = line_at(pos)
            raise ImportFileError(filename, f"expected ',' or ']' but found {text[pos]!r}", line)
        pos = skip_ws(pos + 1)


def _jsonl_items(text: str, filename: str) -> list[tuple[int, object]]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((number, json.loads(line)))
        except RecursionError:
            raise ImportFileError(filename, "the JSON is nested too deeply", number) from None
        except json.JSONDecodeError as exc:
            raise ImportFileError(
                filename, f"invalid JSON: {exc.msg} (column {exc.colno})", number
            ) from None
    return items


def parse_problem_file(
    data: bytes, *, filename: str, default_benchmark: str | None = None
) -> ParsedFile:
    """Parse and validate a whole file; raises ImportFileError naming the first bad line."""
    text = _decode(data, filename)
    if not text.strip():
        raise ImportFileError(filename, "the file is empty: there is nothing to import")
    stripped = text.lstrip()
    items = (
        _json_array_items(text, filename)
        if stripped.startswith("[")
        else _jsonl_items(text, filename)
    )
    if not items:
        raise ImportFileError(filename, "the JSON array is empty: there is nothing to import")
    benchmark = default_benchmark or Path(filename).stem
    records: list[ProblemRecord] = []
    mappings: dict[str, int] = {}
    seen: dict[tuple[str, str], int] = {}
    for index, (line, obj) in enumerate(items):
        record, mapping = normalize_record(
            obj, filename=filename, line=line, index=index, default_benchmark=benchmark
        )
        if default_benchmark:
            # An explicit --benchmark wins over what the records say.
            record = ProblemRecord(**{**asdict(record), "benchmark": default_benchmark})
        _check_columns(record, filename)
        key = (record.benchmark, record.external_id)
        if key in seen:
            raise ImportFileError(
                filename,
                f"duplicate id {record.external_id!r} in {record.benchmark} "
                f"(first seen on line {seen[key]})",
                line,
            )
        seen[key] = line
        records.append(record)
        mappings[mapping] = mappings.get(mapping, 0) + 1
    return ParsedFile(filename=filename, records=records, mappings=mappings)
