"""Graceful cancel: SIGTERM to `python -m training.scripts.sft` stops it at the next step with a
checkpoint, exit code 0, and a final "done" event saying it was cancelled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.polling import wait_for
from training.scripts.runtime import CONFIG_NAME, read_events

REPO = Path(__file__).resolve().parents[3]


def test_sigterm_stops_sft_with_a_checkpoint_and_exit_0(tmp_path, tiny_model_path, sft_file):
    metrics = tmp_path / "metrics.jsonl"
    out = tmp_path / "run"
    env = {**os.environ, "CALM_METRICS_FILE": str(metrics), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.scripts.sft", "--config",
         str(REPO / "training" / "scripts" / "configs" / "sft_tiny.yaml"),
         "--model_name_or_path", str(tiny_model_path), "--train_file", str(sft_file),
         "--output_dir", str(out), "--max_steps", "100000"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: (
                proc.poll() is not None
                or (metrics.exists() and any(e["event"] == "step" for e in read_events(metrics)))
            ),
            what="a first training step (or the script's exit)",
            timeout=120,
            every=0.1,
        )
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]

    events = read_events(metrics)
    done = events[-1]
    assert done["event"] == "done" and done["status"] == "cancelled" and done["cancelled"] is True
    assert done["reason"] == "signal SIGTERM"
    checkpoint = Path(done["checkpoint"])
    assert checkpoint.parent == out and checkpoint.name == f"checkpoint-{done['step']}"
    assert (checkpoint / "model.safetensors").exists() and (checkpoint / CONFIG_NAME).exists()
    assert any(e["event"] == "checkpoint" and e["path"] == str(checkpoint) for e in events)
    assert done["step"] < 100000
