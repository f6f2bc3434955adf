"""Every script ends its metrics file with the same ``done`` event, written in one place
(``MetricsWriter.done``): what the worker reads to tell a finished run from a failed one."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.scripts import evaluate as ev
from training.scripts import sft
from training.scripts.runtime import MetricsWriter, read_events, run_training

CONFIG = Path(__file__).resolve().parents[3] / "training" / "scripts" / "configs" / "sft_tiny.yaml"


def test_a_failed_training_and_a_failed_evaluation_end_with_the_same_done_event(
    tmp_path, tiny_model_path
):
    args = sft.parse_args([
        "--config", str(CONFIG), "--model_name_or_path", str(tiny_model_path),
        "--train_file", str(tmp_path / "train.jsonl"), "--output_dir", str(tmp_path / "run"),
        "--iw_normalize", "sideways",
    ])  # fmt: skip
    with pytest.raises(ValueError, match="iw_normalize"):
        run_training("sft", sft.build_trainer, args, metrics_file=str(tmp_path / "sft.jsonl"))
    with pytest.raises(FileNotFoundError):
        ev.main([
            "--model", str(tiny_model_path), "--device", "cpu",
            "--problems", str(tmp_path / "missing.jsonl"), "--output_dir", str(tmp_path / "ev"),
            "--metrics_file", str(tmp_path / "ev.jsonl"),
        ])  # fmt: skip

    trained = read_events(tmp_path / "sft.jsonl")[-1]
    evaluated = read_events(tmp_path / "ev.jsonl")[-1]
    for done, error in ((trained, "ValueError: --iw_normalize"), (evaluated, "FileNotFoundError")):
        assert (done["event"], done["status"], done["cancelled"]) == ("done", "failed", False)
        assert done["error"].startswith(error)
        assert done["traceback"].startswith("Traceback") and error in done["traceback"]
    assert trained["step"] == 0 and trained["output_dir"] == str(tmp_path / "run")
    assert evaluated["output_dir"] == str(tmp_path / "ev")


def test_the_done_event_says_cancelled_exactly_when_the_run_was_cancelled(tmp_path):
    metrics = MetricsWriter(tmp_path / "m.jsonl")
    assert metrics.done("cancelled", step=3)["cancelled"] is True
    assert metrics.done("completed", step=4)["cancelled"] is False
    with pytest.raises(ValueError, match="unknown run status"):
        metrics.done("finished")
    assert [e["status"] for e in read_events(tmp_path / "m.jsonl")] == ["cancelled", "completed"]
