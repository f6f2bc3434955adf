"""The Celery task on the ``sandbox`` queue."""

from __future__ import annotations

import pytest

from tests.solver_sandbox.sandbox_helpers import NORMAL_JOB, NORMAL_OBJECTIVE


def test_it_runs_the_task_body_and_returns_a_plain_dict():
    pytest.importorskip("celery")
    from solver_sandbox import tasks

    try:
        for _ in range(2):  # a second call reuses the worker-process pool
            result = tasks.run_code(code=NORMAL_JOB, prior_cells=[], limits={"timeout_s": 10})
            assert result["status"] == "ok"
            assert result["objective"] == NORMAL_OBJECTIVE
            assert result["solver_status"] == "optimal"
        assert tasks.run_code.name == "solver_sandbox.run_code"
    finally:
        tasks._close_pool()


@pytest.mark.worker
def test_it_runs_code_on_the_sandbox_queue(live_worker):
    result = live_worker.send_task(
        "solver_sandbox.run_code",
        kwargs={
            "code": "print(f'OBJECTIVE_VALUE: {pyo.value(m.obj)}')",
            "prior_cells": [
                NORMAL_JOB.replace('print(f"OBJECTIVE_VALUE: {pyo.value(m.obj)}")', "")
            ],
            "limits": {"timeout_s": 10},
        },
        queue="sandbox",
    ).get(timeout=60)
    assert result["status"] == "ok", result
    assert result["objective"] == NORMAL_OBJECTIVE
    assert result["solver_status"] == "optimal"
    assert result["objective_verdict"] == "consistent"
    assert result["stdout"] == f"OBJECTIVE_VALUE: {NORMAL_OBJECTIVE}\n"
    assert "seccomp" in result["protections"]
