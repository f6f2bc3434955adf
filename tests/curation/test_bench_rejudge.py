"""``python -m curation.bench rejudge``: the re-judging figures beside judging alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_rejudge_bench_prints_the_service_beside_its_baseline():
    out = subprocess.run(
        [sys.executable, "-m", "curation.bench", "rejudge", "--benchmarks", "2", "--problems",
         "10", "--samples", "3", "--repeat", "1", "--json"],
        cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads(out.stdout)["rejudge"]
    assert [row["run"].split(" ")[0] for row in rows] == ["judging", "evaluation_rejudge"]
    assert all(row["answers"] == 60 and row["answers_per_s"] > 0 for row in rows)
