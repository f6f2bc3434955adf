"""The checks over a trajectory's own record (curation/engine/checks.py).

Each trajectory is hand-written and replayed by the SCRIPTED STAND-IN for a language model, and
its code runs in the REAL solver sandbox: the failures, solver statuses and objectives the
checks read are the sandbox's own.
"""

from __future__ import annotations

import pytest

from curation.engine import RolloutConfig, rollout
from curation.engine.backends.scripted import ScriptedBackend
from curation.engine.checks import DEFAULT_CHECKS, Record, check_specs, run_checks
from curation.engine.sandbox import run_in_sandbox

PROBLEM = (
    "A workshop makes tables and chairs. A table earns $30 and takes 3 hours; a chair earns $10 "
    "and takes 1 hour. There are 10 hours. How much profit at most?"
)
WHOLE = PROBLEM.replace("How much", "Only whole tables and chairs can be made. How much")


def model(domain="NonNegativeReals", sense="maximize", extra=""):
    return (
        "import pyomo.environ as pyo\n"
        "model = pyo.ConcreteModel()\n"
        f"model.t = pyo.Var(within=pyo.{domain})\n"
        f"model.c = pyo.Var(within=pyo.{domain})\n"
        f"model.obj = pyo.Objective(expr=30 * model.t + 10 * model.c, sense=pyo.{sense})\n"
        "model.hours = pyo.Constraint(expr=3 * model.t + model.c <= 10)\n"
        "model.only_t = pyo.Constraint(expr=model.c == 0)\n"
        f"{extra}"
        "pyo.SolverFactory('appsi_highs').solve(model)\n"
        "print('t =', pyo.value(model.t))\n"
        "print('OBJECTIVE_VALUE:', pyo.value(model.obj))\n"
    )


def cell(code: str, after: str = "") -> str:
    return f"Let me solve it.\n```python\n{code}```\n{after}"


def answer(value: str) -> str:
    return (
        f"The solver has answered.\n</think>\nThe maximum profit is \\boxed{{{value}}}.<|im_end|>"
    )


@pytest.fixture(scope="module")
def run(tiny_tokenizer, sandbox):
    """Replay a hand-written trajectory with its code run in the real sandbox; return the
    checks' record of it."""

    def replay(text: str, problem: str = PROBLEM, **config) -> Record:
        backend = ScriptedBackend(tiny_tokenizer, [text])
        r = rollout(backend, problem, RolloutConfig(max_new_tokens=3000, **config),
                    run_code=run_in_sandbox)  # fmt: skip
        return Record(problem=problem, steps=r.steps, answer=r.final_answer,
                      finish_reason=r.finish_reason, rule="relative", tolerance=1e-6)  # fmt: skip

    return replay


def fired(record: Record) -> dict:
    return {f.check: f for f in run_checks(record)}


def test_a_correct_trajectory_raises_nothing(run):
    # max 30t + 10c, 3t + c <= 10, c = 0: t = 10/3, profit 100 (continuous is right here).
    record = run(cell(model()) + answer("100"))
    assert record.steps[0].result["solves"][0]["objective"] == pytest.approx(100)
    assert run_checks(record) == []


def test_an_answer_after_a_failed_cell_is_found_with_its_error_line(run):
    broken = model().replace("model.hours", "modle.hours")
    record = run(cell(broken) + answer("100"))
    finding = fired(record)["answer_after_failure"]
    assert finding.flaw_type == "broken_code"
    assert finding.step == len(record.steps) - 1 == 1  # the step that states the answer
    assert "NameError: name 'modle' is not defined" in finding.evidence
    assert "NameError: name 'modle' is not defined" in finding.hint
    assert "step" not in finding.hint  # the Reasoner never sees step numbers
    assert finding.hint.endswith("```python\n")


def test_a_failure_fixed_by_a_later_optimal_solve_is_not_a_finding(run):
    broken = model().replace("model.hours", "modle.hours")
    record = run(cell(broken, "Fix the typo.\n") + cell(model()) + answer("100"))
    assert record.steps[0].result["status"] == "error"
    assert "answer_after_failure" not in fired(record)


def test_an_answer_that_differs_from_the_optimal_solve_names_the_solvers_value(run):
    record = run(cell(model()) + answer("120"))
    finding = fired(record)["answer_differs_from_solver"]
    assert finding.flaw_type == "code_result_distrust"
    assert "100" in finding.evidence and "'120'" in finding.evidence
    assert "optimal objective of 100" in finding.hint and "120" in finding.hint


def test_the_answer_rules_tolerance_decides_what_differs(run):
    record = run(cell(model()) + answer("100.4"))
    assert "answer_differs_from_solver" in fired(record)
    record.rule = "percent5"  # |100.4 - 100| / 100 is within 5 %
    assert "answer_differs_from_solver" not in fired(record)


def test_a_value_stated_after_an_infeasible_solve_is_found(run):
    infeasible = model(extra="model.at_least = pyo.Constraint(expr=model.t >= 5)\n")
    record = run(cell(infeasible) + answer("150"))
    findings = fired(record)
    finding = findings["answer_despite_no_solution"]
    assert finding.flaw_type == "code_result_distrust"
    assert "infeasible" in finding.evidence and "infeasible" in finding.hint
    assert "answer_differs_from_solver" not in findings


def test_no_optimal_solution_stated_after_an_infeasible_solve_is_not_a_finding(run):
    infeasible = model(extra="model.at_least = pyo.Constraint(expr=model.t >= 5)\n")
    assert run_checks(run(cell(infeasible) + answer("No optimal solution"))) == []


def test_an_answer_without_any_solver_call_is_manual_computation(run):
    by_hand = "t = 10 / 3\nprint(30 * t)\n"
    record = run(cell(by_hand) + answer("100"))
    finding = fired(record)["no_solver_call"]
    assert finding.flaw_type == "manual_computation"
    assert "1 code cell(s) ran, none called a solver" in finding.evidence
    assert "none of my 1 code cell(s) called a solver" in finding.hint

    no_code = run("<think>\n30 times 10/3 is 100.\n" + answer("100"))
    finding = fired(no_code)["no_solver_call"]
    assert finding.step == 0 and "No code was run" in finding.evidence
    assert "I have not run any code" in finding.hint


def test_continuous_variables_where_the_problem_says_whole_are_found(run):
    record = run(cell(model()) + answer("100"), problem=WHOLE)
    finding = fired(record)["continuous_where_integer"]
    assert finding.flaw_type == "variable_domain"
    assert finding.step == 1  # the step that reads the solve's output
    assert "model.t" in finding.hint and "t = 3.333" in finding.hint
    assert 'The problem says "Only whole"' in finding.evidence

    integers = run(cell(model("NonNegativeIntegers")) + answer("90"), problem=WHOLE)
    assert "continuous_where_integer" not in fired(integers)
    # The same continuous model, where the problem does not count whole units: quiet.
    assert "continuous_where_integer" not in fired(run(cell(model()) + answer("100")))


def test_a_solver_the_sandbox_does_not_have_is_named(run):
    gurobi = "import gurobipy as gp\nm = gp.Model()\n"
    record = run(cell(gurobi, "Let me try again.\n") + cell("print(100)\n") + answer("100"))
    finding = fired(record)["unavailable_solver"]
    assert finding.flaw_type == "broken_code" and finding.step == 1
    assert finding.values["library"] == "gurobipy"
    assert "gurobipy is not available in this sandbox" in finding.hint
    # Once the model solved with HiGHS after it, the missing solver is no longer a finding.
    recovered = run(cell(gurobi, "Let me try again.\n") + cell(model()) + answer("100"))
    assert run_checks(recovered) == []


def test_the_repetition_stop_is_a_finding_after_the_first_failure(run):
    broken = "print(undefined_name)\n"
    text = cell(broken) + cell(broken) + cell(broken) + answer("5")
    record = run(text)
    assert record.finish_reason == "repetition"
    finding = fired(record)["repetition"]
    assert finding.flaw_type == "repeated_failing_code"
    assert finding.step == 1 and finding.values["times"] == 3
    assert "NameError: name 'undefined_name' is not defined" in finding.hint


def test_findings_come_in_step_order_and_checks_are_data(run):
    gurobi = "import gurobipy as gp\n"
    record = run(cell(gurobi, "Hmm.\n") + cell("print(30 * 10 / 3)\n") + answer("100"))
    findings = run_checks(record)
    assert [(f.step, f.check) for f in findings] == [
        (1, "unavailable_solver"),
        (2, "answer_after_failure"),
        (2, "no_solver_call"),
    ]
    specs = check_specs(
        {
            "unavailable_solver": {"enabled": False},
            "answer_after_failure": False,
            "no_solver_call": {"hint": "I computed {no_solve}? Use a solver."},
        }
    )
    findings = run_checks(record, specs=specs)
    assert [f.hint for f in findings] == ["I computed none of my 2 code cell(s) called a solver? "
                                          "Use a solver."]  # fmt: skip
    # A check whose flaw type is not in the active taxonomy stays quiet.
    assert run_checks(record, flaw_codes=["broken_code"])[0].check == "unavailable_solver"
    with pytest.raises(ValueError, match="unknown check 'nope'"):
        check_specs({"nope": {"enabled": False}})
    with pytest.raises(ValueError, match="unknown field"):
        check_specs({"repetition": {"hints": "x"}})
    assert set(DEFAULT_CHECKS) == {f.name for f in check_specs().values()}


def test_a_sandbox_that_failed_is_not_the_models_flaw():
    from curation.engine import Step
    from curation.engine.answers import FinalAnswer

    broken = {"status": "harness_error", "detail": "lost contact with the zygote", "solves": [],
              "stdout": "", "stderr": ""}  # fmt: skip
    steps = [
        Step(0, "Solve.", "print(1)", "", broken, False, 0, 1, 2, 3),
        Step(1, "</think> \\boxed{5}", None, None, None, False, 3, None, None, 4),
    ]
    answer = FinalAnswer(text="5", value=5.0, kind="value", source="boxed")
    record = Record(problem=PROBLEM, steps=steps, answer=answer, finish_reason="eos")
    assert "answer_after_failure" not in fired(record)
    record.finish_reason = "infrastructure"
    assert run_checks(record) == []
