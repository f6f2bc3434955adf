"""Reward functions on hand-computed cases."""

from __future__ import annotations

import pytest

from training.scripts.rewards import (
    all_failed_penalty,
    build_reward_funcs,
    calibration,
    code_call_penalty,
    correctness,
    make_all_failed_penalty,
    make_calibration_reward,
    make_code_call_penalty,
    make_correctness_reward,
    stated_confidence,
    with_confidence_request,
)


def _boxed(value: str) -> str:
    return f"<think>\nreasoning\n</think>\nThe optimum is \\boxed{{{value}}}."


def test_it_scores_the_relative_rule_with_its_tolerance():
    texts = [_boxed("1500.0000001"), _boxed("1501"), _boxed("1,500"), "<think>\nno answer yet"]
    assert correctness(texts, answer=[1500.0] * 4, answer_status=["value"] * 4) == [1, 0, 1, 0]
    loose = make_correctness_reward("relative", 1e-3)
    assert loose([_boxed("1501")], answer=[1500.0], answer_status=["value"]) == [1.0]


def test_it_scores_the_percent5_rule():
    reward = make_correctness_reward("percent5")
    texts = [_boxed("1540"), _boxed("1580"), _boxed("0.4")]
    # 40/1500 = 2.7% passes, 80/1500 = 5.3% fails; a zero reference accepts round(a) == 0.
    assert reward(texts, answer=[1500.0, 1500.0, 0.0], answer_status=["value"] * 3) == [1, 0, 1]
    assert correctness([_boxed("1540")], answer=[1500.0], answer_status=["value"]) == [0.0]


def test_it_matches_a_null_reference_only_with_a_no_solution_answer():
    texts = [_boxed("No optimal solution"), _boxed("The problem is infeasible"), _boxed("12")]
    got = correctness(texts, answer=[None] * 3, answer_status=["no_best_solution"] * 3)
    assert got == [1.0, 1.0, 0.0]
    # A sentinel status with a stale number is still a no-solution problem.
    assert correctness(
        [_boxed("-9999")], answer=[-9999.0], answer_status=["infeasible_marker"]
    ) == [0.0]


def test_it_prefers_the_rollouts_final_answer_over_the_text():
    final = {"text": "12", "value": 12.0, "kind": "value", "source": "sandbox"}
    got = correctness(["garbage without a box", "garbage"], answer=[12.0, 13.0],
                      answer_status=["value", "value"], final_answer=[final, final])  # fmt: skip
    assert got == [1.0, 0.0]


def test_it_penalises_a_response_whose_every_code_run_failed():
    got = all_failed_penalty(["a"] * 4, code_calls=[0, 2, 2, 3], failed_code_calls=[0, 2, 1, 3])
    assert got == [0.0, -0.1, 0.0, -0.1]
    assert make_all_failed_penalty(0.5)(["a"], code_calls=[1], failed_code_calls=[1]) == [-0.5]


def test_it_charges_each_code_call_past_the_budget():
    reward = make_code_call_penalty(budget=2, penalty=0.05)
    assert reward(["a"] * 4, code_calls=[0, 2, 3, 6]) == pytest.approx([0.0, 0.0, -0.05, -0.2])
    assert code_call_penalty(["a"], code_calls=[5]) == pytest.approx([-0.05])  # budget 4


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r"</think>\boxed{12} <confidence>0.8</confidence>", 0.8),
        (r"</think>\boxed{12}<confidence> 1 </confidence>", 1.0),
        (r"</think>\boxed{12} <confidence>0</confidence>", 0.0),
        (r"</think>\boxed{12} <confidence>.25</confidence>", 0.25),
        # RLCR reads the last tag after the answer
        (r"</think>\boxed{12} <confidence>0.3</confidence> no: <confidence>0.6</confidence>", 0.6),
        # malformed: another format, a percentage, outside [0, 1], not a number
        (r"</think>\boxed{12} Confidence: 0.8", None),
        (r"</think>\boxed{12} <confidence>80%</confidence>", None),
        (r"</think>\boxed{12} <confidence>1.5</confidence>", None),
        (r"</think>\boxed{12} <confidence>high</confidence>", None),
        # missing: none after the boxed answer (one inside the thinking does not count)
        (r"<confidence>0.9</confidence></think>\boxed{12}", None),
        (r"</think><confidence>0.9</confidence> \boxed{12}", None),
        ("no answer at all", None),
    ],
)
def test_it_reads_the_confidence_in_the_requested_format_only(text, value):
    assert stated_confidence(text) == (pytest.approx(value) if value is not None else None)


def test_it_scores_rlcr_correctness_minus_brier_and_the_worst_term_when_missing():
    texts = [
        _boxed("12") + " <confidence>0.8</confidence>",  # right, 0.8: 1 - 0.04
        _boxed("13") + " <confidence>0.8</confidence>",  # wrong, 0.8: 0 - 0.64
        _boxed("13") + " <confidence>0.1</confidence>",  # wrong, 0.1: 0 - 0.01
        _boxed("12"),  # right, missing: 1 - 1 (RLCR's format gate)
        _boxed("13"),  # wrong, missing: 0 - 1
        _boxed("12") + " <confidence>90%</confidence>",  # right, malformed: 1 - 1
    ]
    got = calibration(texts, answer=[12.0] * 6, answer_status=["value"] * 6)
    assert got == pytest.approx([0.96, -0.64, -0.01, 0.0, -1.0, 0.0])
    loose = make_calibration_reward("orlm")
    done = _boxed("12.4") + " <confidence>1</confidence>"
    assert loose([done], answer=[12.0], answer_status=["value"]) == [1]


def test_it_asks_for_the_confidence_in_the_format_it_reads():
    prompt = with_confidence_request("Solve it.")
    assert prompt.startswith("Solve it.") and "<confidence>0.8</confidence>" in prompt
    assert with_confidence_request(prompt) == prompt
    assert stated_confidence(r"</think>\boxed{3} <confidence>0.8</confidence>") == 0.8


def test_it_builds_named_reward_functions_with_settings():
    names = ["correctness", "all_failed_penalty", "code_call_penalty", "calibration"]
    funcs = build_reward_funcs(names, code_call_budget=0, code_call_penalty_per_call=1)
    assert [f.__name__ for f in funcs] == [
        "correctness",
        "all_failed_penalty",
        "code_call_penalty",
        "calibration",
    ]
    assert funcs[2](["a"], code_calls=[3]) == [-3.0]
    with pytest.raises(ValueError, match="unknown reward"):
        build_reward_funcs(["nope"])
    with pytest.raises(ValueError, match="unknown answer rule"):
        build_reward_funcs(["correctness"], rule="exact")


def test_it_asks_grpo_rollouts_for_a_confidence_only_with_the_calibration_reward():
    from training.scripts.grpo import EngineRollout, GRPOScriptArguments

    plain = EngineRollout(GRPOScriptArguments(reward_funcs=["correctness"])).system_prompt()
    rlcr = EngineRollout(GRPOScriptArguments(reward_funcs=["calibration"])).system_prompt()
    assert "<confidence>" not in plain
    assert rlcr == with_confidence_request(plain)
