"""``python -m solver_sandbox run FILE`` prints one JSON object with the result."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.solver_sandbox.sandbox_helpers import NORMAL_JOB, NORMAL_OBJECTIVE, REPO

KEYS = {
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
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "solver_sandbox", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )


def test_it_runs_a_file_and_prints_one_json_object(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(NORMAL_JOB)
    proc = cli("run", str(model), "--timeout", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1
    data = json.loads(proc.stdout)
    assert set(data) >= KEYS
    assert data["status"] == "ok"
    assert data["objective"] == NORMAL_OBJECTIVE
    assert data["solver_status"] == "optimal"


def test_it_exits_non_zero_and_reports_a_timeout(tmp_path):
    model = tmp_path / "slow.py"
    model.write_text("import time\ntime.sleep(30)")
    proc = cli("run", str(model), "--timeout", "0.5")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["status"] == "timeout"
    assert data["objective"] is None
