"""Re-judging a finished evaluation under another answer rule, from its stored answers only,
and what an imported evaluation records. The evaluation itself runs through the real
evaluation script with a SCRIPTED STAND-IN for the model (fixed answers per problem)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from curation.models import Job, Trajectory
from training.models import EvaluationScore
from training.services.evaluations import RejudgeError, evaluation_rejudge


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_imported_evaluation_records_its_rule_k_mode_counts_and_set_hash(finished_eval):
    score = EvaluationScore.objects.get(run=finished_eval)
    assert (score.rule, score.tolerance, score.rule_label, score.mode) == (
        "sirl", 1e-6, "sirl", "mean",
    )  # fmt: skip
    assert (score.correct, score.wrong, score.no_answer, score.endpoint_errors) == (2, 2, 2, 0)
    assert score.pass_at_1 == pytest.approx(1 / 3) and score.any_of_k == pytest.approx(1 / 3)
    record = finished_eval.results["record"]
    assert record["k"] == 2 and record["mode"] == "mean" and record["rule"] == "sirl"
    assert len(record["problem_set"]["sha256"]) == 64
    ids = sorted(finished_eval.problem_selection["problem_ids"])
    assert [p["id"] for p in score.answers] == [str(i) for i in ids]


def test_it_rejudges_a_stored_evaluation_and_never_touches_its_trajectories(finished_eval):
    root = Path(finished_eval.output_dir)
    files = {name: _sha(root / name) for name in ("trajectories.jsonl", "results.json")}
    rows = list(Trajectory.objects.filter(job=finished_eval.job).order_by("pk").values())
    assert len(rows) == 6

    (toy,) = evaluation_rejudge(run=finished_eval, rule="orlm")

    assert toy.rejudged and toy.rule_label == "orlm" and toy.tolerance == 0.05
    assert toy.pass_at_1 == pytest.approx(2 / 3)  # toy-2's 15.3 passes ORLM's 5%
    assert (toy.correct, toy.wrong, toy.no_answer) == (4, 0, 2)
    own = EvaluationScore.objects.get(run=finished_eval, rejudged=False)
    assert own.pass_at_1 == pytest.approx(1 / 3)  # the evaluation's own figure stays
    assert list(Trajectory.objects.filter(job=finished_eval.job).order_by("pk").values()) == rows
    assert {name: _sha(root / name) for name in files} == files

    again = evaluation_rejudge(run=finished_eval, rule="storm-paper", tolerance=0.05)
    assert again[0].rule_label == "storm-paper (ε=0.05)" and again[0].pass_at_1 == pytest.approx(
        2 / 3
    )
    evaluation_rejudge(run=finished_eval, rule="orlm")  # replaces, never duplicates
    assert finished_eval.scores.count() == 3


def test_it_refuses_to_rejudge_under_the_same_or_an_unknown_rule_or_while_running(finished_eval):
    with pytest.raises(RejudgeError, match="judged under sirl already"):
        evaluation_rejudge(run=finished_eval, rule="sirl")
    with pytest.raises(RejudgeError, match="unknown answer rule"):
        evaluation_rejudge(run=finished_eval, rule="exact")
    Job.objects.filter(pk=finished_eval.job_id).update(status=Job.Status.RUNNING)
    finished_eval.refresh_from_db()
    with pytest.raises(RejudgeError, match="finished"):
        evaluation_rejudge(run=finished_eval, rule="orlm")


def test_it_rejudges_a_benchmark_sized_evaluation(finished_eval):
    # Five benchmarks of 400 problems with 8 stored answers each: 16,000 answers. How long it
    # takes is measured by `python -m curation.bench rejudge`, not asserted here.
    sample = {
        "final_answer": {"text": "101", "value": 101.0, "kind": "value", "source": "boxed"},
        "outcome": "wrong",
        "confidence": None,
        "code_calls": 2,
        "response_tokens": 900,
    }
    samples = [dict(sample, sample=s) for s in range(8)]
    problems = [
        {"id": str(i), "answer": 100.0, "answer_status": "value", "samples": samples}
        for i in range(400)
    ]
    own = EvaluationScore.objects.get(run=finished_eval)
    for name in ("A", "B", "C", "D", "E"):
        EvaluationScore.objects.create(
            run=finished_eval, benchmark=name, rule="sirl", rule_label="sirl", problems=400,
            samples=3200, pass_at_1=0.0, answers=problems,
        )  # fmt: skip
    scores = evaluation_rejudge(run=finished_eval, rule="orlm")
    assert {s.benchmark: s.pass_at_1 for s in scores} == {
        "Toy": pytest.approx(2 / 3), **{n: 1.0 for n in "ABCDE"}}  # fmt: skip
    assert own.answers  # the stored answers were read, not replaced


def test_results_json_keeps_the_answers_the_scores_store(finished_eval):
    stored = json.loads((Path(finished_eval.output_dir) / "results.json").read_text())
    toy = stored["benchmarks"]["Toy"]["problems"]
    score = EvaluationScore.objects.get(run=finished_eval)
    assert [[s["final_answer"] for s in p["samples"]] for p in toy] == [
        [s["final_answer"] for s in p["samples"]] for p in score.answers
    ]
