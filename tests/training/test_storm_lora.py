"""The real model's default SFT on a machine without a GPU is LoRA (storm_bench's CPU
overrides): its checkpoint (an adapter folder) must serve, evaluate and start GRPO like full
weights. The tiny model stands in for the real one; the CALM batch is a SCRIPTED STAND-IN."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.models import TrainingRun
from training.services.storm import StormOptions, storm_run, tiny_endpoints, tiny_options

pytestmark = pytest.mark.django_db(transaction=True)


def test_storm_cycle_with_a_lora_sft_checkpoint(settings, tmp_path, tiny_model_path, toy_problems):
    from training.management.commands.storm_bench import _cpu_sft_overrides

    settings.VAR_DIR = tmp_path
    train, test = toy_problems[:2], toy_problems[2:]
    base, reasoner, intervener = tiny_endpoints(model_dir=tiny_model_path, problems=train)
    options = tiny_options(pool_size=len(train))
    lora = {k: v for k, v in _cpu_sft_overrides(cuda=False).items() if k != "num_train_epochs"}
    options["sft_overrides"] = {**options["sft_overrides"], **lora, "lora_r": 4, "lora_alpha": 8}
    result = storm_run(options=StormOptions(
        train_problems=train, test_problems=test, reasoner=reasoner, intervener=intervener,
        base_model=base, grpo_steps=1, **options,
    ))  # fmt: skip
    s = result["summary"]
    sft = TrainingRun.objects.get(pk=result["lineage"]["sft_run"])
    assert sft.config["use_peft"] is True
    # Served as whole weights: the adapter merged, the endpoint pointing at the merged folder.
    served = sft.endpoint
    assert served.model == str(Path(sft.output_dir) / "merged")
    assert (Path(served.model) / "config.json").is_file()
    grpo = TrainingRun.objects.get(pk=result["lineage"]["grpo_run"])
    assert grpo.config["model_name_or_path"] == served.model
    assert s["trained"]["samples"] == 1 and s["grpo_steps"] == 1
