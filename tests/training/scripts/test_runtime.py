"""The training scripts' runtime helpers on odd run folders."""

from __future__ import annotations

from training.scripts.runtime import last_checkpoint


def test_the_last_checkpoint_ignores_folders_whose_number_int_cannot_read(tmp_path):
    # "²".isdigit() is true, int("²") raises: a stray folder stopped every resume.
    for name in ("checkpoint-2", "checkpoint-10", "checkpoint-²", "checkpoint-x"):
        (tmp_path / name).mkdir()
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
