"""Reward functions on hand-computed cases."""

from __future__ import annotations

import pytest

from training.rewards import (
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
        ("Confidence: 0.8", 0.8),
        ("confidence = 75%", 0.75),
        ("\\confidence{0.25}", 0.25),
        ("<confidence>80%</confidence>", 0.8),
        ("Confidence: 90", 0.9),
        ("Confidence: 0.3 ... on reflection, Confidence: 0.6", 0.6),
        ("no number here", None),
    ],
)
def test_it_reads_the_stated_confidence(text, value):
    assert stated_confidence(text) == (pytest.approx(value) if value is not None else None)


def test_it_scores_rlcr_correctness_minus_brier():
    texts = [
        _boxed("12") + " Confidence: 0.8",  # right, 0.8: 1 - 0.04
        _boxed("13") + " Confidence: 0.8",  # wrong, 0.8: 0 - 0.64
        _boxed("13") + " \\confidence{0.1}",  # wrong, 0.1: 0 - 0.01
        _boxed("12"),  # right, no confidence: 1 - 1
        _boxed("13"),  # wrong, no confidence: 0 - 1
    ]
    got = calibration(texts, answer=[12.0] * 5, answer_status=["value"] * 5)
    assert got == pytest.approx([0.96, -0.64, -0.01, 0.0, -1.0])
    loose = make_calibration_reward("percent5")
    assert loose([_boxed("12.4") + " Confidence: 1"], answer=[12.0], answer_status=["value"]) == [1]


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
