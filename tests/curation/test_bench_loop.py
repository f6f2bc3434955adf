"""``python -m curation.bench loop`` end to end on real parts: the tiny random model as both
Reasoner and Intervener (a real transformers model, so its verdicts are garbage and recorded
as such), the real sandbox, a problem file from outside the bank. It checks the command's
contract (the JSON keys, what it keeps), not figures: speed and quality are measured, not
asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_loop_bench_runs_the_product_s_batch_and_keeps_every_trajectory(
    tmp_path, tiny_model_path
):
    problems = tmp_path / "two.jsonl"
    problems.write_text(
        json.dumps({"id": "lp-1", "question": "Maximize x with x <= 3.", "answer": 3}) + "\n"
        + json.dumps({"id": "lp-2", "question": "Minimize y with y >= 2.", "answer": 2}) + "\n"
    )  # fmt: skip
    out = tmp_path / "run"
    env = {**os.environ, "CALM_MAX_NEW_TOKENS": "40", "CALM_LOCAL_MODEL": "off"}
    proc = subprocess.run(
        [sys.executable, "-m", "curation.bench", "loop", "--problems", str(problems),
         "--reasoner", str(tiny_model_path), "--intervener", str(tiny_model_path),
         "--max-interventions", "1", "--out", str(out), "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("problems", "native_correct", "calm_correct", "golden_candidates",
                "token_modification_ratio", "minutes"):  # fmt: skip
        assert key in summary
    assert summary["problems"] == 2 and summary["golden_candidates"] == 0
    kept = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len(kept) == summary["trajectories"] >= 2
    saved = json.loads((out / "summary.json").read_text())
    assert [p["problem"] for p in saved["problems"]] == ["lp-1", "lp-2"]
    assert (out / "loop.sqlite3").stat().st_size > 0
    assert "CALM loop" in proc.stderr  # the progress bar
    again = subprocess.run(
        [sys.executable, "-m", "curation.bench", "loop", "--report", str(out), "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    reported = json.loads(again.stdout.strip().splitlines()[-1])
    assert reported["finished"] == 2
    assert {k: reported[k] for k in summary if k != "minutes"} == {
        k: v for k, v in summary.items() if k != "minutes"
    }


def test_the_loop_bench_says_why_the_embedded_model_cannot_start(tmp_path, monkeypatch):
    """The bench starts the embedded model the way devstack does; an unprepared one is named,
    with how to prepare it."""
    import pytest

    from curation.bench.loop import _ensure_server
    from curation.engine.serving import local_model

    monkeypatch.setenv("CALM_MODEL_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("CALM_LOCAL_MODEL_PORT", "1")  # nothing serves there

    class Endpoint:
        base_url = local_model.base_url()

    with pytest.raises(SystemExit, match=r"is not prepared.*prepare_model"):
        _ensure_server([Endpoint()])
