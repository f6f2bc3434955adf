"""The demo set's answers are checked by solving each problem's reference model."""

from __future__ import annotations

import pytest

from curation.formats.problem_files import parse_problem_file
from curation.management.commands.demo_setup import DEMO_FILE

RECORDS = parse_problem_file(DEMO_FILE.read_bytes(), filename=DEMO_FILE.name).records


def test_the_demo_set_has_about_a_dozen_problems_with_reference_models():
    assert len(RECORDS) == 12
    assert all("reference_model" in r.raw for r in RECORDS)
    assert any(r.answer is None for r in RECORDS)  # one infeasible problem, on purpose


@pytest.mark.parametrize("record", RECORDS, ids=[r.external_id for r in RECORDS])
def test_each_demo_answer_is_what_highs_finds(record):
    import pyomo.environ as pyo
    from pyomo.opt import TerminationCondition

    namespace: dict = {}
    exec(record.raw["reference_model"], namespace)  # noqa: S102 - our own checked-in models
    model = namespace["m"]
    result = pyo.SolverFactory("appsi_highs").solve(model, load_solutions=False)
    condition = result.solver.termination_condition
    if record.answer is None:
        assert condition in (TerminationCondition.infeasible, TerminationCondition.unbounded)
    else:
        assert condition == TerminationCondition.optimal
        model.solutions.load_from(result)
        assert pyo.value(model.obj) == pytest.approx(record.answer, rel=1e-9)
