from __future__ import annotations

import pytest

from curation.engine import extract_final_answer, judge
from curation.engine.answer_rules import judge_text
from curation.engine.answers import FinalAnswer, no_solution_kind


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r"<think>\boxed{1}</think> So \boxed{1500}.", 1500.0),
        (r"</think>\boxed{\frac{3}{4}}", 0.75),
        (r"</think>The profit is \boxed{\$1,500.50}", 1500.5),
        (r"</think>\boxed{1500 \text{ dollars}}", 1500.0),
        (r"</think>\boxed{x = 3, y = 4, z = 12}", 12.0),
        (r"</think>\boxed{-2.5e3}", -2500.0),
        (r"</think>first \boxed{7}, then \boxed{\dfrac{10}{4}}", 2.5),
        (r"</think>\boxed{{12}}", 12.0),
        (r"no thinking at all: \boxed{42}", 42.0),
        (r"</think>\boxed{1.5 \times 10^{4}}", 15000.0),
        (r"</think>\boxed{1.5 \cdot 10^4}", 15000.0),
        (r"</think>\boxed{1500 (x = 3)}", 1500.0),
        (r"</think>\boxed{z = 1500 \; (x = 3, y = 2)}", 1500.0),
    ],
)
def test_it_reads_the_last_boxed_answer_after_thinking(text, value):
    answer = extract_final_answer(text)
    assert answer.source == "boxed"
    assert answer.value == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    [r"</think>\boxed{\text{Infeasible}}", r"</think>\boxed{No optimal solution}",
     r"</think>\boxed{unbounded}"],
)  # fmt: skip
def test_it_recognizes_no_solution_answers(text):
    answer = extract_final_answer(text)
    assert answer.kind == "no_solution"
    assert answer.value is None


@pytest.mark.parametrize(
    ("word", "kind"),
    [("unlimited", "unbounded"), ("无界", "unbounded"), ("unbounded", "unbounded"),
     ("infeasible", "infeasible"), ("no feasible solution", "infeasible")],
)  # fmt: skip
def test_a_no_solution_word_is_read_and_judged_the_same_way(word, kind):
    extracted = extract_final_answer(rf"</think>The model is \boxed{{{word}}}.")
    assert (extracted.kind, extracted.value) == ("no_solution", None)
    assert FinalAnswer.from_stored(word, None, "boxed").kind == "no_solution"
    assert no_solution_kind(extracted.text) == kind
    # Judged as that kind of no-solution answer, whether given extracted or as text.
    for answer in (extracted, word, rf"\boxed{{{word}}}"):
        assert judge(answer, None, answer_status="no_best_solution")
        assert not judge(answer, 10.0)
    assert judge_text("sirl", extracted, None).reason == f"answered {kind}"
    assert judge_text("sirl", extracted, 10.0).reason.startswith("answered no solution")


RESULTS = [
    {"status": "ok", "solves": [{"termination": "optimal", "objective": 10.0}]},
    {"status": "ok", "solves": [{"termination": "infeasible", "objective": None}]},
    {"status": "ok", "solves": [{"termination": "optimal", "objective": 12.5}]},
    {"status": "error", "solves": []},
]


def test_it_does_not_credit_an_answer_the_model_never_stated():
    assert extract_final_answer("<think>cut off before any answer", RESULTS) is None
    assert extract_final_answer("<think>x", RESULTS, final_step="the solver says 12.5") is None
    assert judge(extract_final_answer("<think>cut off", RESULTS), 12.5) is False


def test_it_credits_the_last_optimal_solve_only_when_asked_and_says_so():
    answer = extract_final_answer("<think>cut off before any answer", RESULTS, credit_sandbox=True)
    assert (answer.value, answer.source) == (12.5, "sandbox")
    assert extract_final_answer("<think>nothing", [], credit_sandbox=True) is None


def test_it_takes_a_box_in_the_final_step_of_a_thought_never_closed():
    text = "<think>\nmodel ... ```output\nOBJECTIVE_VALUE: 12.5\n```\nSo \\boxed{12.5}."
    answer = extract_final_answer(text, RESULTS, final_step="So \\boxed{12.5}.")
    assert (answer.value, answer.source) == (12.5, "boxed")
    # A box inside the reasoning before the last code output is not the final answer.
    assert extract_final_answer(text, RESULTS, final_step="then it stopped") is None


def test_it_judges_with_the_relative_rule_by_default():
    assert judge(1500.0000001, 1500.0)
    assert not judge(1500.01, 1500.0)
    assert judge(extract_final_answer(r"</think>\boxed{0.0000005}"), 0.0)
    assert judge(r"\boxed{1,500}", 1500)


def test_it_judges_with_the_five_percent_rule_after_rounding():
    assert judge(1574.4, 1500, rule="percent5")
    assert not judge(1576, 1500, rule="percent5")
    assert judge(0.4, 0, rule="percent5")  # rounds to 0
    assert not judge(1.0, 0, rule="percent5")


def test_it_accepts_only_no_solution_answers_for_problems_without_an_optimum():
    infeasible = extract_final_answer(r"</think>\boxed{infeasible}")
    assert judge(infeasible, None, answer_status="no_best_solution")
    assert judge(infeasible, -99999, answer_status="infeasible_marker")
    assert not judge(
        extract_final_answer(r"</think>\boxed{0}"), None, answer_status="no_best_solution"
    )
    assert not judge(None, None, answer_status="no_best_solution")
    assert not judge(infeasible, 10.0)


def test_it_rejects_an_unknown_rule():
    with pytest.raises(ValueError):
        judge(1.0, 1.0, rule="vibes")


def test_a_box_in_a_thought_never_closed_before_its_last_output_is_unstated():
    """Read from text alone (no step information), the final step is what follows the last
    ```output block: the same decision the engine makes from its token tags."""
    text = "<think>\nA guess: \\boxed{12}.\n```python\nprint(12)\n```\n```output\n12\n```\nHmm"
    assert extract_final_answer(text) is None
    assert extract_final_answer(text + " so \\boxed{12}.").value == 12.0
    assert extract_final_answer("<think>\nno code, just \\boxed{7}").value == 7.0
