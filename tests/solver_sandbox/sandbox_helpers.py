"""Shared by the sandbox tests: the normal follow-up job and a host-side process check."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from solver_sandbox import SandboxPool, SandboxResult, Status

REPO = Path(__file__).resolve().parents[2]

NORMAL_JOB = textwrap.dedent(
    """
    import pyomo.environ as pyo

    m = pyo.ConcreteModel()
    m.x = pyo.Var(within=pyo.NonNegativeReals)
    m.y = pyo.Var(within=pyo.NonNegativeReals)
    m.c1 = pyo.Constraint(expr=m.x + 2 * m.y <= 14)
    m.c2 = pyo.Constraint(expr=3 * m.x - m.y >= 0)
    m.c3 = pyo.Constraint(expr=m.x - m.y <= 2)
    m.obj = pyo.Objective(expr=3 * m.x + 4 * m.y, sense=pyo.maximize)
    pyo.SolverFactory("highs").solve(m)
    print(f"OBJECTIVE_VALUE: {pyo.value(m.obj)}")
    """
)
NORMAL_OBJECTIVE = 34.0


def slot_processes(pool: SandboxPool) -> list[int]:
    """Host pids still running as one of the pool's slot uids (zombies excluded)."""
    uids = set(pool.slot_uids)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uid = int(fields.get("Uid", "-1 -1").split()[0])
        if uid in uids and "zombie" not in fields.get("State", ""):
            found.append(int(name))
    return found


def assert_pool_healthy(pool: SandboxPool) -> SandboxResult:
    """The follow-up every hostile case gets: a normal job on the same pool must succeed."""
    result = pool.run(NORMAL_JOB)
    assert result.status == Status.OK, (result.status, result.detail, result.stderr[-2000:])
    assert result.objective == pytest.approx(NORMAL_OBJECTIVE)
    assert result.objective_verdict == "consistent"
    assert result.stdout.strip() == f"OBJECTIVE_VALUE: {NORMAL_OBJECTIVE}"
    assert result.stderr == ""
    if pool.runs_as_slot_uids:
        assert pool.wait_idle(), "the slot never came back"
        assert slot_processes(pool) == []
    return result
