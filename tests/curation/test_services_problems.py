"""Storing problems: idempotent re-imports and all-or-nothing files."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from curation.formats.problem_files import parse_problem_file
from curation.models import Benchmark, Problem
from curation.services.problems import problems_import, problems_import_plan

pytestmark = pytest.mark.django_db


def records(*rows, filename="set.jsonl"):
    data = "\n".join(json.dumps(r) for r in rows).encode()
    return parse_problem_file(data, filename=filename).records


def test_it_creates_then_reports_unchanged_on_a_second_import():
    rows = [{"id": f"p{i}", "question": f"q{i}", "answer": i} for i in range(3)]
    first = problems_import(records=records(*rows))
    second = problems_import(records=records(*rows))
    assert first.totals() == {"created": 3, "updated": 0, "unchanged": 0}
    assert second.totals() == {"created": 0, "updated": 0, "unchanged": 3}
    assert Problem.objects.count() == 3


def test_it_updates_a_problem_whose_answer_changed():
    problems_import(records=records({"id": "p1", "question": "q", "answer": 1}))
    summary = problems_import(records=records({"id": "p1", "question": "q", "answer": 2}))
    assert summary.totals()["updated"] == 1
    assert Problem.objects.get(external_id="p1").answer == 2


def test_it_stores_no_solution_markers_without_a_value():
    problems_import(
        records=records(
            {"id": "a", "question": "q", "answer": "No Best Solution"},
            {"id": "b", "question": "q", "answer": -99999},
        )
    )
    statuses = dict(Problem.objects.values_list("external_id", "answer_status"))
    assert statuses == {"a": "no_best_solution", "b": "infeasible_marker"}
    assert not Problem.objects.filter(answer__isnull=False).exists()


def test_it_plans_an_import_without_writing():
    problems_import(records=records({"id": "p1", "question": "q", "answer": 1}))
    plan = problems_import_plan(
        records=records(
            {"id": "p1", "question": "q", "answer": 1}, {"id": "p2", "question": "q", "answer": 2}
        )
    )
    assert plan.totals() == {"created": 1, "updated": 0, "unchanged": 1}
    assert Problem.objects.count() == 1


def test_the_command_imports_nothing_from_a_file_with_one_broken_line(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"id": "g1", "question": "q", "answer": 1}) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"id": "b1", "question": "q", "answer": 1})
        + "\n"
        + json.dumps({"id": "b2", "question": "q", "answer": 2})
        + "\n{not json\n"
    )
    with pytest.raises(CommandError, match="1 file"):
        call_command("import_problems", str(good), str(bad), verbosity=0)
    err = capsys.readouterr().err
    assert f"{bad} line 3: invalid JSON" in err
    # The good file went in; nothing from the broken one did.
    assert list(Problem.objects.values_list("external_id", flat=True)) == ["g1"]


def test_the_command_imports_the_shared_benchmarks_with_the_published_counts(
    benchmarks_dir, capsys
):
    files = sorted(str(p) for p in benchmarks_dir.glob("*.jsonl"))
    call_command("import_problems", *files, verbosity=0)
    counts = {b.name: b.problems.count() for b in Benchmark.objects.all()}
    assert counts == {
        "NL4Opt": 245,
        "MAMO-EasyLP": 642,
        "MAMO-ComplexLP": 203,
        "IndustryOR": 100,
        "OptiBench": 605,
        "NLP4LP": 242,
    }
    nl4opt_first = Problem.objects.get(external_id="nl4opt-0000")
    assert nl4opt_first.answer == 1160
    capsys.readouterr()
    call_command("import_problems", *files, verbosity=0)
    last = capsys.readouterr().out.splitlines()[-1].split()
    assert last[:5] == ["all", "0", "0", "2037", "2037"]  # created, updated, unchanged, total


def test_the_command_names_the_broken_line_in_a_copy_of_a_benchmark(benchmarks_dir, tmp_path):
    lines = (benchmarks_dir / "nl4opt.jsonl").read_text().splitlines()
    lines[41] = lines[41][:-20]  # truncate line 42
    broken = tmp_path / "nl4opt_copy.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError):
        call_command("import_problems", str(broken), verbosity=0)
    assert Problem.objects.count() == 0


def test_demo_setup_is_idempotent_and_creates_the_admin_once(capsys):
    call_command("demo_setup")
    first = capsys.readouterr().out
    call_command("demo_setup")
    second = capsys.readouterr().out
    assert "12 created" in first
    assert "Demo admin created: admin / " in first
    assert "12 unchanged" in second
    assert "exists" in second
    assert Problem.objects.filter(benchmark__name="CALM Demo").count() == 12
