"""Answer-rule presets on tables of pairs taken from the public evaluators' own code.

ORLM eval/execute.py rounds both numbers and accepts 5% (|pred| <= 0.05 when gt == 0), and
prints "No Best Solution" for any non-optimal status; SIRL check_result.py accepts
|pred - gt| / (|gt| + 1) <= 1e-6 and treats "Infeasible" in the log as the answer to a "No Best
Solution" / "-9999" reference; STORM's reward is |a - r| / |r| <= eps; CoRT's math grader is an
exact match after normalisation."""

from __future__ import annotations

import pytest

from curation.engine import judge
from curation.engine.answer_rules import PRESETS, RULES, get_rule, judge_text, normalise

# (rule, answer text as inside \boxed{}, reference (None: no optimal solution), correct)
TABLE = [
    # orlm: rounding, then 5%
    ("orlm", "1574.4", 1500, True),  # rounds to 1574: 4.93%
    ("orlm", "1575.6", 1500, False),  # rounds to 1576: 5.07%
    ("orlm", "104.9", 100, True),
    ("orlm", "105.6", 100, False),  # 106: 6%
    ("orlm", "0.4", 0, True),  # rounds to 0
    ("orlm", "0.6", 0, False),  # rounds to 1
    ("orlm", "-95.2", -100, True),
    ("orlm", "No Best Solution", None, True),
    ("orlm", "The problem is infeasible", None, True),
    ("orlm", "unbounded", None, True),
    ("orlm", "No Best Solution", 12, False),
    ("orlm", "12", None, False),
    # sirl / optmath: 1e-6 relative, |r| + 1 in the denominator
    ("sirl", "1500.0000001", 1500, True),
    ("sirl", "1500.01", 1500, False),
    ("sirl", "0.0000005", 0, True),  # |0.0000005| / 1 <= 1e-6
    ("sirl", "0.000002", 0, False),
    ("sirl", r"\$1,500", 1500, True),
    ("sirl", r"\frac{3}{2}", 1.5, True),
    ("sirl", "Infeasible", None, True),
    ("sirl", "There is no optimal solution", None, True),
    ("sirl", "1500", None, False),
    ("optmath", "2.0000015", 2, True),  # 1.5e-6 / 3 = 5e-7
    ("optmath", "2.00001", 2, False),
    ("optmath", "unbounded", None, True),
    # storm-paper: |a - r| / |r| <= eps (default 1e-6), |r| alone in the denominator
    ("storm-paper", "0.0000005", 0, True),
    ("storm-paper", "1.0000005", 1, True),
    ("storm-paper", "1.000002", 1, False),  # sirl would accept: 2e-6 / 2 = 1e-6
    ("storm-paper", "infeasible", None, True),
    # cort-math: exact after normalisation
    ("cort-math", r"\text{1,500.00}", 1500, True),
    ("cort-math", "1500", 1500, True),
    ("cort-math", "1500.0001", 1500, False),
    ("cort-math", "1.5", 1.5, True),
    ("cort-math", "No Best Solution", None, True),
    ("cort-math", "no optimal solution", None, True),
    ("cort-math", "infeasible", None, False),  # CoRT knows no "infeasible" answer
    # every rule: an empty or number-less answer is wrong
    ("sirl", "", 12, False),
    ("orlm", "about twelve", 12, False),
]


@pytest.mark.parametrize(("rule", "answer", "reference", "correct"), TABLE)
def test_it_judges_each_preset_as_its_evaluator_does(rule, answer, reference, correct):
    assert judge_text(rule, answer, reference).correct is correct


def test_it_defines_every_preset_the_field_uses_as_data():
    assert set(PRESETS) <= set(RULES)
    assert get_rule("orlm").tolerance == 0.05 and not get_rule("orlm").tolerance_is_setting
    assert get_rule("sirl").tolerance == get_rule("optmath").tolerance == 1e-6
    assert get_rule("storm-paper").tolerance_is_setting
    assert get_rule("cort-math").no_solution == frozenset({"no_optimum"})


def test_it_takes_the_storm_epsilon_as_a_setting_and_ignores_it_for_fixed_rules():
    assert not judge_text("storm-paper", "1.01", 1).correct
    assert judge_text("storm-paper", "1.01", 1, tolerance=0.02).correct
    assert not judge_text("sirl", "1.01", 1, tolerance=0.5).correct  # fixed at 1e-6
    assert get_rule("storm-paper").label(0.001) == "storm-paper (ε=0.001)"
    assert get_rule("orlm").label(0.5) == "orlm"


def test_it_reports_the_error_the_rule_measures():
    assert judge_text("sirl", "1501", 1500).error == pytest.approx(1 / 1501)
    assert judge_text("storm-paper", "1501", 1500).error == pytest.approx(1 / 1500)
    assert judge_text("orlm", "1574.6", 1500).error == pytest.approx(75 / 1500)
    assert judge_text("orlm", "infeasible", None).error is None


def test_it_reads_references_as_numbers_or_none():
    assert judge_text("sirl", "infeasible", "none").correct
    assert judge_text("sirl", "12", "12.0").correct
    with pytest.raises(ValueError, match="number or 'none'"):
        judge_text("sirl", "12", "twelve")


def test_it_rejects_an_unknown_rule_and_a_negative_setting():
    with pytest.raises(ValueError, match="unknown answer rule"):
        judge_text("vibes", "1", 1)
    with pytest.raises(ValueError, match="tolerance"):
        judge_text("storm-paper", "1", 1, tolerance=-1)


def test_it_normalises_like_a_math_grader():
    assert normalise(r"\boxed{\$1,234.50}") == "1234.5"
    assert normalise(r"\text{No Best Solution}.") == "nobestsolution"


def test_the_engine_judge_accepts_the_presets():
    assert judge(r"\boxed{1574.4}", 1500, rule="orlm")
    assert not judge(r"\boxed{1574.4}", 1500, rule="sirl")
    assert judge("infeasible", -99999, answer_status="infeasible_marker", rule="sirl")
