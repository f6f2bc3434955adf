"""An evaluation records what it was: rule and tolerance, k and mode, sampling, prompt,
endpoint and checkpoint, the problem set's hash, and outcome counts with endpoint errors and
missing answers apart from wrong ones. The model is a SCRIPTED STAND-IN (one fixed answer per
question; "ENDPOINT" makes the model server fail); judging and summing are the real ones."""

from __future__ import annotations

import json

import pytest

from curation.engine.backends.scripted import ScriptedBackend
from tests.training.scripts.conftest import write_problems
from training.scripts import evaluate as ev
from training.scripts.eval_scoring import rejudge

PROBLEMS = [
    {"id": "a", "benchmark": "NL4Opt", "question": "Maximize 3x, x <= 4.", "answer": 12.0,
     "answer_status": "value", "answer_version": 1},
    {"id": "b", "benchmark": "NL4Opt", "question": "Maximize 3x, x <= 5.", "answer": 15.0,
     "answer_status": "value", "answer_version": 2},
    {"id": "c", "benchmark": "IndustryOR", "question": "Maximize x, x >= 1.", "answer": None,
     "answer_status": "no_best_solution"},
    {"id": "d", "benchmark": "IndustryOR", "question": "ENDPOINT down.", "answer": 3.0,
     "answer_status": "value"},
]  # fmt: skip
REPLIES = {
    "x <= 4": "ok\n</think>\n\\boxed{12} <confidence>0.9</confidence>",  # right
    "x <= 5": "ok\n</think>\n\\boxed{15.3} <confidence>0.8</confidence>",  # 2% off
    "x >= 1": "I could not finish.",  # no answer
}


def _scripted(tokenizer):
    def reply(request, prompt_text):
        if "ENDPOINT" in prompt_text:
            raise ConnectionError("scripted stand-in: the model server is down")
        return next(text for key, text in REPLIES.items() if key in prompt_text)

    return ScriptedBackend(tokenizer, reply)


def _evaluate(tmp_path, tokenizer, **kwargs):
    problems = write_problems(tmp_path / "problems.jsonl", PROBLEMS)
    args = ev.EvaluateArguments(
        model="/ckpt/grpo-7", problems=[str(problems)], output_dir=str(tmp_path / "out"),
        backend="openai", base_url="http://127.0.0.1:9/v1", api_key_env="KEY_NAME",
        k=2, temperature=0.6, top_p=0.95, seed=3, batch_size=1, **kwargs,
    )  # fmt: skip
    results = ev.evaluate(args, backend=_scripted(tokenizer))
    return results, json.loads((tmp_path / "out" / "results.json").read_text())


def test_it_records_rule_k_mode_sampling_prompt_endpoint_and_set_hash(tmp_path, tiny_tokenizer):
    results, stored = _evaluate(tmp_path, tiny_tokenizer, rule="storm-paper", tolerance=0.05,
                                ask_confidence=True)  # fmt: skip
    rec = stored["record"]
    assert rec["rule"] == "storm-paper" and rec["tolerance"] == 0.05
    assert rec["rule_label"] == "storm-paper (ε=0.05)"
    assert rec["k"] == 2 and rec["mode"] == "mean"
    assert rec["sampling"]["temperature"] == 0.6 and rec["sampling"]["seed"] == 3
    assert "<confidence>0.8</confidence>" in rec["prompt"]["system_prompt"]
    assert len(rec["prompt"]["sha256"]) == 64
    assert rec["endpoint"] == {
        "backend": "openai",
        "model": "/ckpt/grpo-7",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "KEY_NAME",
    }
    assert rec["checkpoint"] == "/ckpt/grpo-7"
    assert len(rec["problem_set"]["sha256"]) == 64 and rec["problem_set"]["n_problems"] == 4
    assert set(rec["problem_set"]["benchmarks"]) == {"NL4Opt", "IndustryOR"}
    assert rec["answer_versions"] == [1, 2]
    assert stored == json.loads(json.dumps(results))


def test_it_counts_endpoint_errors_and_missing_answers_apart_from_wrong_ones(
    tmp_path, tiny_tokenizer
):
    _, stored = _evaluate(tmp_path, tiny_tokenizer, rule="sirl")
    nl4opt, industry = stored["benchmarks"]["NL4Opt"], stored["benchmarks"]["IndustryOR"]
    assert nl4opt["counts"] == {"correct": 2, "wrong": 2, "no_answer": 0, "endpoint_error": 0,
                                "infrastructure": 0}  # fmt: skip
    assert industry["counts"] == {"correct": 0, "wrong": 0, "no_answer": 2, "endpoint_error": 2,
                                  "infrastructure": 0}  # fmt: skip
    assert stored["counts"]["endpoint_error"] == 2
    assert nl4opt["pass_at_1"] == 0.5 and nl4opt["score"] == 0.5
    assert nl4opt["brier"] is None  # no confidence was asked for


def test_it_reports_any_of_k_when_asked_and_the_brier_score_of_stated_confidences(
    tmp_path, tiny_tokenizer
):
    _, stored = _evaluate(tmp_path, tiny_tokenizer, rule="orlm", mode="any", ask_confidence=True)
    nl4opt = stored["benchmarks"]["NL4Opt"]
    assert nl4opt["counts"]["correct"] == 4  # 15.3 is within ORLM's 5%
    assert nl4opt["any_of_k"] == nl4opt["score"] == 1.0 and stored["mode"] == "any"
    # two samples at 0.9 and two at 0.8, all correct: ((0.1)² · 2 + (0.2)² · 2) / 4
    assert nl4opt["brier"] == pytest.approx(0.025) and nl4opt["n_confidences"] == 4


def test_it_rejudges_stored_answers_under_another_rule(tmp_path, tiny_tokenizer):
    _, stored = _evaluate(tmp_path, tiny_tokenizer, rule="sirl")
    before = json.dumps(stored, sort_keys=True)
    again = rejudge(stored, rule="orlm", tolerance=None)
    assert (
        again["NL4Opt"]["pass_at_1"] == 1.0 and stored["benchmarks"]["NL4Opt"]["pass_at_1"] == 0.5
    )
    assert again["IndustryOR"]["counts"]["endpoint_error"] == 2  # never re-judged as wrong
    assert json.dumps(stored, sort_keys=True) == before


def test_it_refuses_an_unknown_rule_or_mode_before_sampling(tmp_path, tiny_tokenizer):
    with pytest.raises(ValueError, match="unknown answer rule"):
        _evaluate(tmp_path, tiny_tokenizer, rule="percent7")
    with pytest.raises(ValueError, match="--mode"):
        _evaluate(tmp_path, tiny_tokenizer, mode="best")
