"""A run's configuration: the preset, the form's fields, the overrides, the keys the run owns,
and the command line that launches it. No database."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from training.services.configs import (
    ConfigError,
    command_for,
    config_merge,
    endpoint_model_args,
    overrides_parse,
    presets,
)


def test_each_kind_offers_its_own_presets():
    assert {"sft", "sft_tiny"} <= set(presets("sft"))
    assert {"grpo_cort", "grpo_tiny"} <= set(presets("grpo"))
    assert {"eval", "eval_tiny"} <= set(presets("evaluate"))
    assert not set(presets("sft")) & set(presets("grpo"))


def test_fields_override_the_preset_and_overrides_override_fields_but_not_owned_keys():
    config = config_merge(
        "sft", "sft_tiny",
        fields={"learning_rate": 2e-3, "max_steps": None},  # None keeps the preset's value
        overrides={"learning_rate": 5e-4, "warmup_ratio": 0.1},
        owned={"output_dir": "/runs/1-sft", "model_name_or_path": "/m"},
    )  # fmt: skip
    assert config["learning_rate"] == 5e-4
    assert config["max_steps"] == 2  # the preset's
    assert config["warmup_ratio"] == 0.1
    assert config["disable_tqdm"] is True  # progress comes from the metrics file
    assert config["output_dir"] == "/runs/1-sft"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learning_rate: [1, 2\nfoo: 1", "not valid YAML (line"),
        ("- just\n- a list", "must be a mapping"),
        ("output_dir: /elsewhere", "set by the run itself, not by overrides: output_dir"),
        ("lr: {a: 1}", "nested mappings"),
        ("'bad key!': 1", "is not an argument name"),
    ],
)
def test_bad_overrides_get_a_clear_error(text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        overrides_parse(text, "sft")


def test_overrides_keep_yaml_types():
    text = "max_steps: 10\nuse_peft: true\nlora_target_modules: [q_proj]"
    assert overrides_parse(text, "sft") == {
        "max_steps": 10, "use_peft": True, "lora_target_modules": ["q_proj"],
    }  # fmt: skip


def test_training_needs_local_weights_and_evaluation_takes_a_server():
    server = {
        "name": "vllm-4b", "backend": "openai", "model": "qwen3-4b",
        "base_url": "http://gpu:8000/v1", "tokenizer": "/models/qwen3", "api_key_env": "",
    }  # fmt: skip
    with pytest.raises(ConfigError, match="needs local weights"):
        endpoint_model_args("sft", server)
    # Evaluation gets the whole spec in a file (endpoint.json), as generation uses it.
    assert endpoint_model_args("evaluate", server) == {
        "model": "qwen3-4b", "endpoint_spec": "endpoint.json",
    }  # fmt: skip
    local = {"name": "ckpt", "backend": "transformers", "model": "/runs/1-sft"}
    assert endpoint_model_args("grpo", local) == {"model_name_or_path": "/runs/1-sft"}
    with pytest.raises(ConfigError, match="scripted"):
        endpoint_model_args("evaluate", {"name": "s", "backend": "scripted", "model": "x"})


def test_the_command_is_the_trl_script_shape_and_goes_under_accelerate_for_multi_gpu():
    plain = command_for("grpo", Path("/r/run.yaml"), metrics_path=Path("/r/m.jsonl"))
    assert plain == [sys.executable, "-m", "training.scripts.grpo", "--config", "/r/run.yaml",
                     "--metrics_file", "/r/m.jsonl"]  # fmt: skip
    resumed = command_for(
        "sft", Path("/r/run.yaml"), metrics_path=Path("/r/m.jsonl"), resume="/r/checkpoint-50",
        accelerate_config="zero2", num_processes=8,
    )  # fmt: skip
    assert resumed[1:3] == ["-m", "accelerate.commands.launch"]
    assert resumed[resumed.index("--num_processes") + 1] == "8"
    assert resumed[resumed.index("--config_file") + 1].endswith(
        "training/scripts/accelerate/zero2.yaml"
    )
    assert resumed[-2:] == ["--resume_from_checkpoint", "/r/checkpoint-50"]
    assert "training.scripts.sft" in resumed
    with pytest.raises(ConfigError, match="unknown accelerate config"):
        command_for("sft", Path("c"), metrics_path=Path("m"), accelerate_config="nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trust_remote_code: true", "trust_remote_code may not be set"),
        ("push_to_hub: true", "push_to_hub may not be set"),
        ("hub_model_id: me/model", "hub_model_id may not be set"),
        ("logging_dir: /etc/cron.d", "paths outside the run folder"),
        ("logging_dir: ../../other-run", "paths outside the run folder"),
    ],
)
def test_overrides_cannot_run_remote_code_publish_or_leave_the_run_folder(text, message):
    with pytest.raises(ConfigError, match=message):
        overrides_parse(text, "sft")
