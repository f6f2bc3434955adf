"""Reading problem files: schemas, answer markers, and errors that name the file and line."""

from __future__ import annotations

import json
import time

import pytest

from curation.formats.problem_files import ImportFileError, parse_answer, parse_problem_file


def jsonl(*records) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


UNIFORM = {
    "id": "nl4opt-0000",
    "benchmark": "NL4Opt",
    "question": "Maximize profit of chairs and tables.",
    "answer": 1160.0,
    "answer_status": "value",
    "source_repo": "org/repo",
    "source_path": "test_data/NL4OPT.jsonl",
    "source_commit": "8e85194b",
    "source_index": 0,
    "source_id": None,
    "raw": {"en_answer": "1160"},
}


def test_it_reads_the_uniform_schema_with_its_provenance():
    parsed = parse_problem_file(jsonl(UNIFORM), filename="nl4opt.jsonl")
    (record,) = parsed.records
    assert (record.benchmark, record.external_id, record.answer) == ("NL4Opt", "nl4opt-0000", 1160)
    assert (record.source_repo, record.source_commit, record.source_index) == (
        "org/repo",
        "8e85194b",
        0,
    )
    assert record.raw == {"en_answer": "1160"}


def test_it_reads_the_orlm_schema_and_names_the_mapping():
    parsed = parse_problem_file(
        jsonl({"en_question": "Minimize cost.", "en_answer": "42.5"}), filename="orlm.jsonl"
    )
    (record,) = parsed.records
    assert record.question == "Minimize cost."
    assert record.answer == 42.5
    assert record.benchmark == "orlm"  # the file name, when records carry none
    assert record.external_id == "orlm-0000"  # the position, when records carry no id
    assert list(parsed.mappings) == ["question←en_question, answer←en_answer, id←(position)"]


def test_it_reads_a_json_array_with_line_numbers():
    data = b'[\n  {"question": "q1", "answer": 1},\n  {"question": "q2", "answer": 2}\n]\n'
    parsed = parse_problem_file(data, filename="plain.json")
    assert [r.line for r in parsed.records] == [2, 3]
    assert [r.answer for r in parsed.records] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("raw", "answer", "status"),
    [
        (12, 12.0, "value"),
        ("3,600", 3600.0, "value"),
        (" -7.5e2 ", -750.0, "value"),
        ("No Best Solution", None, "no_best_solution"),
        (None, None, "no_best_solution"),
        (-9999, None, "infeasible_marker"),
        ("-99999", None, "infeasible_marker"),
        ("-9999.0", None, "infeasible_marker"),
    ],
)
def test_it_understands_the_answer_conventions_of_the_field(raw, answer, status):
    assert parse_answer(raw) == (answer, status)


@pytest.mark.parametrize("raw", ["about 12", True, [1], float("nan"), "inf"])
def test_it_rejects_answers_that_are_not_numbers_or_markers(raw):
    with pytest.raises(ValueError):
        parse_answer(raw)


def test_it_names_the_line_of_broken_json():
    data = jsonl(UNIFORM) + b"\n" + b'{"question": "q", "answer": ' + b"\n"
    with pytest.raises(ImportFileError) as err:
        parse_problem_file(data, filename="broken.jsonl")
    assert err.value.line == 2
    assert str(err.value).startswith("broken.jsonl line 2: invalid JSON")


def test_it_names_the_line_of_a_record_without_a_question():
    data = jsonl({"question": "ok", "answer": 1}, {"answer": 2}, {"question": "ok", "answer": 3})
    with pytest.raises(ImportFileError, match=r"x.jsonl line 2: no question field"):
        parse_problem_file(data, filename="x.jsonl")


def test_it_names_the_line_of_an_unreadable_answer():
    data = jsonl({"question": "a", "answer": 1}, {"question": "b", "answer": "lots"})
    with pytest.raises(ImportFileError, match=r"line 2: answer 'lots' is not a number"):
        parse_problem_file(data, filename="x.jsonl")


def test_it_refuses_duplicate_ids_in_one_file_and_names_both_lines():
    data = jsonl({**UNIFORM}, {**UNIFORM, "question": "another"})
    with pytest.raises(ImportFileError, match=r"line 2: duplicate id 'nl4opt-0000'.*line 1"):
        parse_problem_file(data, filename="dup.jsonl")


def test_it_refuses_an_empty_file():
    with pytest.raises(ImportFileError, match="empty"):
        parse_problem_file(b"\n  \n", filename="empty.jsonl")
    with pytest.raises(ImportFileError, match="empty"):
        parse_problem_file(b"[]", filename="empty.json")


def test_it_names_the_line_of_bytes_that_are_not_utf8():
    data = b'{"question": "ok", "answer": 1}\n{"question": "caf\xe9", "answer": 2}\n'
    with pytest.raises(ImportFileError, match=r"latin.jsonl line 2: not valid UTF-8"):
        parse_problem_file(data, filename="latin.jsonl")


def test_it_accepts_a_utf8_byte_order_mark():
    parsed = parse_problem_file(b"\xef\xbb\xbf" + jsonl(UNIFORM), filename="bom.jsonl")
    assert len(parsed.records) == 1


def test_it_rejects_a_status_that_contradicts_the_answer():
    data = jsonl({**UNIFORM, "answer": None, "answer_status": "value"})
    with pytest.raises(ImportFileError, match="contradicts"):
        parse_problem_file(data, filename="x.jsonl")


def test_it_lets_an_explicit_benchmark_override_the_records():
    parsed = parse_problem_file(jsonl(UNIFORM), filename="x.jsonl", default_benchmark="Mine")
    assert parsed.records[0].benchmark == "Mine"


def test_it_rejects_an_unclosed_json_array_and_says_where():
    data = b'[\n {"question": "q1", "answer": 1},\n {"question": "q2", "answer": 2}\n'
    with pytest.raises(ImportFileError, match="not closed"):
        parse_problem_file(data, filename="open.json")


def test_a_large_json_array_parses_in_linear_time_with_its_line_numbers():
    # 1.4 MB in 20,000 elements took 7 s when each element's line was counted from the top.
    rows = ",\n".join(
        f'{{"id": "p{n}", "question": "q{n} {"x" * 40}", "answer": {n}}}' for n in range(20_000)
    )
    data = f"[\n{rows}\n]\n".encode()
    assert len(data) > 1_300_000
    started = time.monotonic()
    parsed = parse_problem_file(data, filename="big.json")
    assert time.monotonic() - started < 1
    assert [r.line for r in parsed.records[:2]] == [2, 3]
    assert parsed.records[-1].line == 20_001


@pytest.mark.parametrize("data", [b"[" * 100_000 + b"]" * 100_000, b"[" + b"[" * 100_000])
def test_deeply_nested_json_is_refused_with_a_message(data):
    with pytest.raises(ImportFileError, match=r"nested too deeply|invalid JSON"):
        parse_problem_file(data, filename="deep.json")
    with pytest.raises(ImportFileError, match=r"nested too deeply|invalid JSON"):
        parse_problem_file(data[1:] + b"\n", filename="deep.jsonl")
