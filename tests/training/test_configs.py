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
    ("kind", "text", "message"),
    [
        ("sft", "trust_remote_code: true", "trust_remote_code may not be set"),
        ("grpo", "trust_remote_code: true", "trust_remote_code may not be set"),
        ("sft", "push_to_hub: true", "push_to_hub may not be set"),
        ("sft", "hub_model_id: me/model", "hub_model_id may not be set"),
        ("grpo", "log_completions_hub_repo: me/x", "log_completions_hub_repo may not be set"),
        ("sft", "model_revision: main", "model_revision may not be set"),
        ("sft", "resume_from_checkpoint: true", "resume_from_checkpoint may not be set"),
        ("sft", "logging_dir: /etc/cron.d", "logging_dir may not be set"),
        ("sft", "eval_file: ../../other-run/tokens.jsonl", "eval_file may not be set"),
        ("sft", "chat_template_path: /tmp/evil.jinja", "chat_template_path may not be set"),
        ("grpo", "vllm_server_host: evil.example", "vllm_server_host may not be set"),
        ("grpo", "use_vllm: true", "use_vllm may not be set"),
        ("grpo", "model_init_kwargs: '{\"trust_remote_code\": true}'", "model_init_kwargs"),
        ("evaluate", "base_url: http://evil.example/v1", "set by the run itself"),
        (
            "evaluate",
            "learning_rate: 0.1",
            "learning_rate may not be set by overrides of an evaluation",
        ),
        ("sft", "report_to: wandb", "metrics stay on this machine"),
        ("sft", "report_to: [tensorboard, wandb]", "metrics stay on this machine"),
        ("grpo", "system_prompt: /etc/passwd", "paths outside the run folder"),
        ("sft", "lora_target_modules: [q_proj, ../x]", "paths outside the run folder"),
    ],
)
def test_overrides_may_set_only_the_kinds_allowed_keys_named_when_refused(kind, text, message):
    with pytest.raises(ConfigError, match=message):
        overrides_parse(text, kind)


def test_every_key_the_presets_set_may_be_overridden():
    # A relaunch passes the old config's differences from the preset as overrides.
    import yaml

    from training.services.configs import ALLOWED_OVERRIDES, APP_KEYS, CONFIGS_DIR, PRESET_PREFIX

    for kind, prefix in PRESET_PREFIX.items():
        for path in CONFIGS_DIR.glob(f"{prefix}*.yaml"):
            keys = set(yaml.safe_load(path.read_text())) - set(APP_KEYS[kind])
            assert keys <= ALLOWED_OVERRIDES[kind], (path.name, keys - ALLOWED_OVERRIDES[kind])
    overrides_parse("report_to: none\nmax_steps: 10\nlora_target_modules: [q_proj]", "sft")


def test_a_run_created_or_relaunched_with_a_refused_override_is_refused():
    with pytest.raises(ConfigError, match="trust_remote_code may not be set"):
        config_merge("sft", "sft_tiny", fields={}, overrides={"trust_remote_code": True},
                     owned={"output_dir": "/runs/1-sft"})  # fmt: skip
