"""``python manage.py judge`` from the command line: a real subprocess, exit 0 both ways."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _judge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "judge", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_it_prints_correct_and_the_error_and_exits_0():
    out = _judge("--rule", "orlm", "--answer", "1574.4", "--reference", "1500")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("correct\terror=0.0493333")


def test_it_prints_incorrect_and_still_exits_0():
    out = _judge("--rule", "sirl", "--answer", r"\$1,501", "--reference", "1500")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("incorrect\terror=0.000666")


def test_it_reads_none_as_no_optimal_solution():
    out = _judge("--rule", "sirl", "--answer", "The model is infeasible", "--reference", "none")
    assert out.returncode == 0 and out.stdout.startswith("correct\terror=n/a")
    out = _judge("--rule", "cort-math", "--answer", "infeasible", "--reference", "none")
    assert out.returncode == 0 and out.stdout.startswith("incorrect")


def test_it_takes_epsilon_for_the_storm_rule():
    out = _judge("--rule", "storm-paper", "--answer", "101", "--reference", "100",
                 "--tolerance", "0.05")  # fmt: skip
    assert out.stdout.startswith("correct") and "storm-paper (ε=0.05)" in out.stdout


def test_it_fails_clearly_on_an_unknown_rule_or_reference():
    out = _judge("--rule", "vibes", "--answer", "1", "--reference", "1")
    assert out.returncode == 1 and "unknown answer rule 'vibes'" in out.stderr
    out = _judge("--rule", "sirl", "--answer", "1", "--reference", "twelve")
    assert out.returncode == 1 and "number or 'none'" in out.stderr


def _judge_response(text: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "judge", "--response", "-", *args],
        cwd=ROOT, input=text, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_response_judges_only_its_stated_answer_and_an_unstated_one_is_incorrect(tmp_path):
    guess = (
        "<think>\nSo a guess: \\boxed{12}.\n```python\nprint(12)\n```\n```output\n12\n```\nStill"
    )
    out = _judge_response(guess, "--rule", "sirl", "--reference", "12")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("incorrect\terror=n/a") and "stated=none" in out.stdout
    stated = guess + " sure.\n</think>\nThe optimum is \\boxed{1.2 \\times 10^{1}}."
    out = _judge_response(stated, "--rule", "sirl", "--reference", "12")
    assert out.stdout.startswith("correct\terror=0") and "stated='1.2 \\\\times" in out.stdout
    # A thought never closed: a box in its final step (after the last output) is the answer.
    path = tmp_path / "response.txt"
    path.write_text(guess + " done: \\boxed{1500 (x = 3)}")
    out = _judge("--rule", "sirl", "--response", str(path), "--reference", "1500")
    assert out.stdout.startswith("correct"), out.stdout


def test_the_response_form_fails_clearly_on_a_missing_file_and_needs_one_form():
    out = _judge("--rule", "sirl", "--response", "/nonexistent/r.txt", "--reference", "1")
    assert out.returncode == 1 and "cannot read the response /nonexistent/r.txt" in out.stderr
    out = _judge("--rule", "sirl", "--reference", "1")
    assert out.returncode != 0 and "--answer" in out.stderr
