"""The SFT throughput bench runs both sides on the same data and reports them side by side
(figures are printed for people, never asserted)."""

from __future__ import annotations

from training.scripts.bench import main


def test_the_sft_bench_reports_both_scripts_and_the_ratio(capsys):
    assert (
        main(["sft", "--steps", "2", "--records", "8", "--repeats", "1", "--max_length", "256"])
        == 0
    )
    out = capsys.readouterr().out
    assert "bare TRL SFTTrainer" in out and "training.scripts.sft (CALM Studio)" in out
    assert "vs bare" in out and "1.00x" in out  # the baseline's own ratio
