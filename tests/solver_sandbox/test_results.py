"""What a run reports: objective from the solve hook, statuses, cells, solvers, exits."""

from __future__ import annotations

import json
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from solver_sandbox import Limits, SandboxResult, SolverStatus, Status
from tests.solver_sandbox.sandbox_helpers import NORMAL_JOB, NORMAL_OBJECTIVE

INFEASIBLE = textwrap.dedent(
    """
    import pyomo.environ as pyo
    m = pyo.ConcreteModel()
    m.x = pyo.Var(within=pyo.NonNegativeReals)
    m.lo = pyo.Constraint(expr=m.x >= 5)
    m.hi = pyo.Constraint(expr=m.x <= 3)
    m.obj = pyo.Objective(expr=m.x)
    """
)


def test_it_takes_the_objective_from_the_solve_not_the_print(pool):
    result = pool.run(NORMAL_JOB)
    assert result.status == Status.OK
    assert result.objective == pytest.approx(NORMAL_OBJECTIVE)
    assert result.solver_status == SolverStatus.OPTIMAL
    assert result.solve_count == 1
    (solve,) = result.solves
    assert solve["solver"] == "highs" and solve["termination"] == "optimal"
    assert solve["objective"] == pytest.approx(NORMAL_OBJECTIVE)


def test_it_records_a_solve_made_inside_a_function(pool):
    code = "def main():\n" + textwrap.indent(NORMAL_JOB, "    ")
    result = pool.run(code + "\nif __name__ == '__main__':\n    main()\n")
    assert result.status == Status.OK, result.stderr
    assert result.objective == pytest.approx(NORMAL_OBJECTIVE)
    assert result.objective_verdict == "consistent"


def test_it_reports_an_objective_that_was_never_printed(pool):
    result = pool.run(NORMAL_JOB.replace('print(f"OBJECTIVE_VALUE: {pyo.value(m.obj)}")', ""))
    assert result.objective == pytest.approx(NORMAL_OBJECTIVE)
    assert result.printed_objective is None
    assert result.objective_verdict == "unprinted"


def test_it_reports_infeasible_for_an_infeasible_model(pool):
    result = pool.run(INFEASIBLE + "r = pyo.SolverFactory('highs').solve(m, load_solutions=False)")
    assert result.status == Status.OK, result.stderr
    assert result.solver_status == SolverStatus.INFEASIBLE
    assert result.objective is None


@pytest.mark.parametrize("solver", ["highs", "appsi_highs"])
def test_it_records_infeasible_even_when_the_solve_raises(pool, solver):
    result = pool.run(INFEASIBLE + f"pyo.SolverFactory({solver!r}).solve(m)")
    assert result.status == Status.ERROR
    assert result.solver_status == SolverStatus.INFEASIBLE
    assert result.objective is None
    assert "feasible solution was not found" in result.stderr


def test_it_reports_unbounded_for_an_unbounded_model(pool):
    result = pool.run(
        textwrap.dedent(
            """
            import pyomo.environ as pyo
            m = pyo.ConcreteModel()
            m.x = pyo.Var(within=pyo.NonNegativeReals)
            m.obj = pyo.Objective(expr=m.x, sense=pyo.maximize)
            pyo.SolverFactory("appsi_highs").solve(m, load_solutions=False)
            """
        )
    )
    assert result.solver_status in (SolverStatus.UNBOUNDED, SolverStatus.INFEASIBLE_OR_UNBOUNDED)
    assert result.objective is None


def test_it_uses_the_last_optimal_solve_and_counts_them_all(pool):
    code = (
        NORMAL_JOB + "\nm.c1.set_value(m.x + 2 * m.y <= 20)\npyo.SolverFactory('highs').solve(m)\n"
    )
    result = pool.run(code)
    assert result.solve_count == 2
    assert result.objective == pytest.approx(result.solves[-1]["objective"])
    assert result.objective > NORMAL_OBJECTIVE
    assert result.objective_verdict == "mismatch"  # the printed value is of the first solve


def test_it_runs_prior_cells_first_and_silently(pool):
    prior = [
        "import pyomo.environ as pyo\nprint('noise from cell 0')",
        "m = pyo.ConcreteModel()\nm.x = pyo.Var(bounds=(0, 4))\nprint('noise from cell 1')",
    ]
    code = (
        "m.obj = pyo.Objective(expr=m.x, sense=pyo.maximize)\npyo.SolverFactory('highs').solve(m)"
    )
    result = pool.run(code + "\nprint('OBJECTIVE_VALUE:', pyo.value(m.obj))", prior_cells=prior)
    assert result.status == Status.OK, result.stderr
    assert result.stdout == "OBJECTIVE_VALUE: 4.0\n"
    assert result.objective == pytest.approx(4)
    assert result.prior_cell_errors == []
    assert result.solves[0]["cell"] == 2


def test_it_reports_a_failing_prior_cell_as_such_and_keeps_going(pool):
    prior = ["x = 1", "y = 1 / 0", "z = x + 1"]
    result = pool.run("print(x, z, 'y' in dir())", prior_cells=prior)
    assert result.status == Status.OK
    assert result.stdout == "1 2 False\n"
    assert result.prior_cell_errors == [
        {"type": "ZeroDivisionError", "message": "division by zero", "cell": 1}
    ]


def test_it_counts_solves_of_prior_cells_for_a_printed_answer(pool):
    result = pool.run(
        "print(f'OBJECTIVE_VALUE: {pyo.value(m.obj)}')",
        prior_cells=[NORMAL_JOB.replace('print(f"OBJECTIVE_VALUE: {pyo.value(m.obj)}")', "")],
    )
    assert result.objective == pytest.approx(NORMAL_OBJECTIVE)
    assert result.objective_verdict == "consistent"
    assert result.solves[0]["cell"] == 0


def test_it_reports_an_exception_with_a_traceback_of_the_users_code(pool):
    result = pool.run("def f():\n    return {}['missing']\n\nf()")
    assert result.status == Status.ERROR
    assert result.error == {"type": "KeyError", "message": "'missing'", "cell": "main"}
    assert 'File "<main>", line 2, in f' in result.stderr
    assert "harness" not in result.stderr


def test_a_traceback_through_a_library_names_no_host_directory(pool):
    # Seen on the embedded model: "File \"/tmp/trial/.venv/lib/python3.11/site-packages/...".
    import sys

    result = pool.run("import pyomo.environ as pyo\nimport json\npyo.ConcreteModel().solve()\n")
    assert result.status == Status.ERROR and result.error["type"] == "AttributeError"
    assert 'File "site-packages/pyomo/core/base/block.py"' in result.stderr
    assert sys.prefix not in result.stderr and ".venv" not in result.stderr
    repo = str(Path(__file__).resolve().parents[2])
    wrapped = pool.run(
        "import pyomo.environ as pyo\nm = pyo.ConcreteModel()\n"
        "pyo.SolverFactory('appsi_highs').solve(m, bogus_option=1)\n"
    )  # through the sandbox's solver wrapper
    assert wrapped.status == Status.ERROR and 'File "<main>", line 3' in wrapped.stderr
    assert repo not in wrapped.stderr and sys.prefix not in wrapped.stderr
    warned = pool.run("import warnings, json.decoder as d\nwarnings.warn_explicit('old', "
                      "UserWarning, d.__file__, 1)\n")  # fmt: skip
    assert "python3.11/json/decoder.py:1: UserWarning: old" in warned.stderr
    stdlib = pool.run("import json\njson.loads('{')")
    assert 'File "python3.11/json/' in stdlib.stderr and sys.base_prefix not in stdlib.stderr


@pytest.mark.parametrize(
    "code,status,exit_code",
    [
        ("import sys\nsys.exit()", Status.OK, 0),
        ("import sys\nsys.exit(0)", Status.OK, 0),
        ("import sys\nsys.exit(3)", Status.ERROR, 3),
        ("raise SystemExit('bad input')", Status.ERROR, 1),
        ("import sys\nsys.exit(True)", Status.ERROR, 1),
        ("import sys\nsys.exit(2**40)", Status.ERROR, 1),  # no 32-bit code: 1, not tampering
    ],
)
def test_it_treats_sys_exit_like_a_script_would(pool, code, status, exit_code):
    result = pool.run(code)
    assert result.status == status
    assert result.exit_code == exit_code


@pytest.mark.parametrize("name", ["gurobi", "glpk", "cplex", "cbc", "gurobi_direct", "ipopt"])
def test_it_tells_the_model_to_use_highs_for_unavailable_solvers(pool, name):
    result = pool.run(INFEASIBLE + f"pyo.SolverFactory({name!r}).solve(m)")
    assert result.status == Status.ERROR
    assert result.error["type"] == "SolverUnavailableError"
    assert "Use Pyomo with HiGHS" in result.error["message"]
    assert result.solves == []


@pytest.mark.parametrize("module", ["gurobipy", "cplex", "docplex.mp.model", "mosek"])
def test_it_tells_the_model_to_use_highs_for_unavailable_solver_packages(pool, module):
    result = pool.run(f"import {module}")
    assert result.status == Status.ERROR
    assert result.error["type"] == "ModuleNotFoundError"
    assert "Use Pyomo with HiGHS" in result.error["message"]


def test_it_lets_code_check_availability_without_failing(pool):
    result = pool.run("import pyomo.environ as pyo\nprint(pyo.SolverFactory('gurobi').available())")
    assert result.status == Status.OK
    assert result.stdout == "False\n"


def test_it_routes_pulp_to_highs_and_records_the_solve(pool):
    result = pool.run(
        textwrap.dedent(
            """
            import pulp
            prob = pulp.LpProblem("p", pulp.LpMaximize)
            x = pulp.LpVariable("x", lowBound=0, upBound=3, cat="Integer")
            y = pulp.LpVariable("y", lowBound=0)
            prob += 2 * x + y
            prob += x + y <= 5
            prob.solve(pulp.PULP_CBC_CMD(msg=0))
            print("OBJECTIVE_VALUE:", pulp.value(prob.objective))
            """
        )
    )
    assert result.status == Status.OK, result.stderr
    assert result.profile == "scipy"
    assert result.objective == pytest.approx(8)
    assert result.solves[0]["interface"] == "pulp"
    assert result.solves[0]["routed_from"] == "PULP_CBC_CMD"
    assert result.objective_verdict == "consistent"


def test_it_records_scipy_linprog_and_milp(pool):
    result = pool.run(
        textwrap.dedent(
            """
            import numpy as np
            from scipy.optimize import linprog, milp, LinearConstraint
            r = linprog([-1, -2], A_ub=[[1, 1]], b_ub=[4], bounds=[(0, 3), (0, 3)])
            r2 = milp([-1, -1], constraints=LinearConstraint([[2, 2]], ub=[5]),
                      integrality=np.ones(2))
            print("OBJECTIVE_VALUE:", r2.fun)
            """
        )
    )
    assert result.status == Status.OK, result.stderr
    assert [s["interface"] for s in result.solves] == ["scipy.linprog", "scipy.milp"]
    assert result.solves[0]["objective"] == pytest.approx(-7)
    assert result.objective == pytest.approx(-2)


def test_it_records_direct_highspy_solves(pool):
    result = pool.run(
        textwrap.dedent(
            """
            import highspy
            h = highspy.Highs()
            h.silent()
            x = h.addVariable(lb=0, ub=4)
            y = h.addVariable(lb=0, ub=4)
            h.addConstr(x + y <= 5)
            h.maximize(x + 2 * y)
            print("OBJECTIVE_VALUE:", h.getInfo().objective_function_value)
            """
        )
    )
    assert result.status == Status.OK, result.stderr
    assert result.solves[0]["interface"] == "highspy"
    assert result.objective == pytest.approx(9)
    assert result.objective_verdict == "consistent"


def test_it_imports_stdlib_modules_the_zygote_did_not(pool):
    result = pool.run("import email.mime.text, wave, colorsys\nprint('ok')")
    assert result.status == Status.OK, result.stderr
    assert result.stdout == "ok\n"


def test_it_runs_concurrent_callers(pool):
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda i: pool.run(f"print({i})"), range(12)))
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(12)]
    assert all(r.status == Status.OK for r in results)


def test_it_reports_resources_and_protections(pool):
    started = time.monotonic()
    result = pool.run(NORMAL_JOB)
    assert 0 < result.wall_ms <= (time.monotonic() - started) * 1000  # measured, not made up
    assert result.cpu_ms > 0
    assert result.max_rss_mb > 10
    assert {"rlimits", "seccomp", "wall_deadline", "output_cap"} <= set(result.protections)
    if pool.runs_as_slot_uids:
        assert "uid_per_slot" in result.protections


def test_it_returns_a_json_able_dict(pool):
    data = pool.run(NORMAL_JOB).to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    for key in (
        "status",
        "objective",
        "solver_status",
        "solves",
        "printed_objective",
        "stdout",
        "stderr",
        "truncated_bytes",
        "wall_ms",
        "cpu_ms",
        "max_rss_mb",
        "protections",
    ):
        assert key in data
    assert data["status"] == "ok" and data["solver_status"] == "optimal"


def test_it_accepts_limits_as_a_dict_and_rejects_unknown_ones():
    assert Limits.from_dict({"timeout_s": 5}).timeout_s == 5
    assert Limits.from_dict(None) == Limits()
    with pytest.raises(ValueError, match="unknown limit"):
        Limits.from_dict({"timeout": 5})
    assert SandboxResult(status=Status.OK, objective=float("inf")).to_dict()["objective"] is None
