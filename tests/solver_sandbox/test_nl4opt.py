"""The first NL4Opt problem, modelled as a Reasoner would, returns its reference objective."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from solver_sandbox import SolverStatus, Status
from tests.solver_sandbox.sandbox_helpers import REPO

BENCHMARKS = Path(os.environ.get("CALM_BENCHMARKS_DIR", REPO.parent / "shared" / "benchmarks"))

# nl4opt-0000: ducks to shore by boat (10 per trip, 20 min) or canoe (8 per trip, 40 min); at
# most 12 boat trips; at least 60% of trips by canoe; at least 300 ducks; minimize total time.
DUCKS = textwrap.dedent(
    """
    import pyomo.environ as pyo

    def build(max_canoe_trips=None):
        m = pyo.ConcreteModel()
        m.boat = pyo.Var(within=pyo.NonNegativeIntegers)
        m.canoe = pyo.Var(within=pyo.NonNegativeIntegers)
        m.ducks = pyo.Constraint(expr=10 * m.boat + 8 * m.canoe >= 300)
        m.boat_cap = pyo.Constraint(expr=m.boat <= 12)
        m.canoe_share = pyo.Constraint(expr=m.canoe >= 0.6 * (m.boat + m.canoe))
        if max_canoe_trips is not None:
            m.canoe_cap = pyo.Constraint(expr=m.canoe <= max_canoe_trips)
        m.time = pyo.Objective(expr=20 * m.boat + 40 * m.canoe, sense=pyo.minimize)
        return m

    def main():
        m = build(MAX_CANOE_TRIPS)
        results = pyo.SolverFactory("highs").solve(m, load_solutions=False)
        condition = results.solver.termination_condition
        print("termination:", condition)
        if condition == pyo.TerminationCondition.optimal:
            m.solutions.load_from(results)
            print("boat trips:", pyo.value(m.boat), "canoe trips:", pyo.value(m.canoe))
            print(f"OBJECTIVE_VALUE: {pyo.value(m.time)}")

    if __name__ == "__main__":
        main()
    """
)


@pytest.fixture(scope="module")
def first_nl4opt_problem() -> dict:
    path = BENCHMARKS / "nl4opt.jsonl"
    if not path.exists():
        pytest.skip(f"the shared NL4Opt benchmark is not at {path} (set CALM_BENCHMARKS_DIR)")
    with path.open() as fh:
        problem = json.loads(fh.readline())
    assert "ducks" in problem["question"]  # the model below is of this problem
    return problem


def test_it_returns_the_reference_objective_for_the_first_nl4opt_problem(
    pool, first_nl4opt_problem
):
    result = pool.run(DUCKS.replace("MAX_CANOE_TRIPS", "None"))
    assert result.status == Status.OK, result.stderr
    assert result.solver_status == SolverStatus.OPTIMAL
    assert result.objective == pytest.approx(first_nl4opt_problem["answer"])
    assert result.objective == pytest.approx(1160)
    assert result.printed_objective == pytest.approx(1160)
    assert result.objective_verdict == "consistent"


def test_it_reports_infeasible_for_an_infeasible_variant(pool):
    # At most 10 canoe trips: 12 * 10 + 10 * 8 = 200 ducks < 300.
    result = pool.run(DUCKS.replace("MAX_CANOE_TRIPS", "10"))
    assert result.status == Status.OK, result.stderr
    assert result.solver_status == SolverStatus.INFEASIBLE
    assert result.objective is None
    assert result.objective_verdict == "not_optimal"
    assert "termination: infeasible" in result.stdout
