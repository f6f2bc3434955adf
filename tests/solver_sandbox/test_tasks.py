"""The Celery task on the ``sandbox`` queue."""

from __future__ import annotations

import pytest

from tests.polling import wait_for
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


def test_it_answers_harness_error_when_the_worker_s_sandbox_refuses(monkeypatch):
    from solver_sandbox import tasks

    # A simulated host without bubblewrap.
    monkeypatch.setattr("solver_sandbox.isolation.bwrap_problem", lambda: "bwrap not installed")
    monkeypatch.setattr(tasks, "_refusal", None)
    tasks._close_pool()
    try:
        result = tasks.run_code(code=NORMAL_JOB)
        assert result["status"] == "harness_error"
        assert "refuses to start" in result["detail"] and "no bubblewrap" in result["detail"]
        again = tasks.run_code(code=NORMAL_JOB)  # the refusal is remembered, not retried
        assert again["detail"] == result["detail"]
    finally:
        tasks._close_pool()
        tasks._refusal = None


@pytest.mark.worker
@pytest.mark.django_db
def test_a_worker_below_the_minimum_protections_takes_no_sandbox_work(
    live_worker, test_database_url, client_for, admin_user
):
    from django.urls import reverse

    from calm_studio.worker_presence import live_workers, redis_client
    from tests.conftest import start_worker, stop_worker

    proc, hostname = start_worker(test_database_url, PATH="/nonexistent-calm-path")  # no bwrap
    try:
        payload = wait_for(
            lambda: live_workers(redis_client()).get(hostname),
            what=f"worker {hostname} to announce itself",
            timeout=30,
        )
        assert "sandbox" not in payload["queues"] and "default" in payload["queues"]
        assert payload["sandbox"]["ok"] is False
        assert "no bubblewrap" in payload["sandbox"]["refused"]
        assert "SANDBOX_GIVE_UP=filesystem_isolation" in payload["sandbox"]["refused"]
        body = client_for(admin_user).get(reverse("healthz")).json()
        assert body["sandbox"][hostname]["ok"] is False
        assert hostname not in body["checks"]["workers"]["queues"]["sandbox"]["workers"]
        assert body["sandbox"][live_worker.worker_hostname]["ok"] is True
    finally:
        stop_worker(proc)
