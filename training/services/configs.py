"""A run's configuration: a preset YAML from ``training/scripts/configs/``, the form's fields over
it, then the admin's overrides, then the keys the app owns (model, data, output folder).

The result is the flat mapping the entry points read with ``--config`` (TRL's parser), so the
preview shows exactly the file that is launched. Plain functions over dicts: no database.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "scripts" / "configs"
ACCELERATE_DIR = Path(__file__).resolve().parent.parent / "scripts" / "accelerate"
# The entry point of each kind, and the preset file names it may use.
MODULES = {
    "sft": "training.scripts.sft",
    "grpo": "training.scripts.grpo",
    "evaluate": "training.scripts.evaluate",
}
PRESET_PREFIX = {"sft": "sft", "grpo": "grpo", "evaluate": "eval"}
DEFAULT_PRESET = {"sft": "sft", "grpo": "grpo_cort", "evaluate": "eval"}
# Set by the app from the run's own fields: an override of one of these is refused.
APP_KEYS = {
    "sft": ("model_name_or_path", "train_file", "output_dir", "metrics_file"),
    "grpo": (
        "model_name_or_path", "train_files", "output_dir", "metrics_file", "rollouts_file",
        "prompts_file",
    ),
    "evaluate": (
        "model", "backend", "base_url", "tokenizer", "api_key_env", "endpoint_spec", "problems",
        "output_dir", "metrics_file", "prompts_file",
    ),
}  # fmt: skip
# Progress comes from the metrics file; a progress bar in the log is noise there.
RUN_DEFAULTS = {"sft": {"disable_tqdm": True}, "grpo": {"disable_tqdm": True}, "evaluate": {}}


class ConfigError(ValueError):
    pass


def presets(kind: str) -> list[str]:
    """The preset names (file stems) a kind can start from."""
    prefix = PRESET_PREFIX[kind]
    return sorted(p.stem for p in CONFIGS_DIR.glob(f"{prefix}*.yaml"))


def preset_load(kind: str, name: str) -> dict[str, Any]:
    if name not in presets(kind):
        raise ConfigError(f"unknown {kind} preset {name!r} (one of {', '.join(presets(kind))})")
    data = yaml.safe_load((CONFIGS_DIR / f"{name}.yaml").read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}.yaml is not a mapping")
    return data


def accelerate_configs() -> list[str]:
    return sorted(p.stem for p in ACCELERATE_DIR.glob("*.yaml"))


# What an override may set, per kind: the knobs of training and sampling, never a path, a hub
# id, a server address, remote code or publishing (anything not listed is refused by name).
# Every key the presets use is here, so a relaunch (the old config's differences as
# overrides) passes the same check.
_TRAINING = (
    # transformers.TrainingArguments: optimisation, schedule, batching, logging, checkpoints
    "learning_rate",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "optim",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "gradient_checkpointing",
    "logging_steps",
    "logging_first_step",
    "save_strategy",
    "save_steps",
    "save_total_limit",
    "eval_strategy",
    "eval_steps",
    "seed",
    "data_seed",
    "bf16",
    "fp16",
    "tf32",
    "use_cpu",
    "dataloader_num_workers",
    "disable_tqdm",
    "label_smoothing_factor",
    "neftune_noise_alpha",
    "report_to",
    # trl.ModelConfig, without the model's name or revision
    "dtype",
    "attn_implementation",
    "use_peft",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
    "lora_modules_to_save",
    "lora_task_type",
    "use_rslora",
    "use_dora",
    "load_in_8bit",
    "load_in_4bit",
    "bnb_4bit_quant_type",
    "use_bnb_nested_quant",
)
ALLOWED_OVERRIDES: dict[str, frozenset[str]] = {
    "sft": frozenset((
        *_TRAINING, "max_length", "truncation_mode", "packing", "padding_free",
        "completion_only_loss", "assistant_only_loss", "shuffle_dataset", "loss_type",
        # training.scripts.sft
        "train_on_hints", "use_record_weights", "iw_sft", "iw_w_min", "iw_w_max",
        "iw_temperature", "iw_normalize",
    )),
    "grpo": frozenset((
        *_TRAINING, "num_generations", "beta", "epsilon", "epsilon_high", "delta", "loss_type",
        "scale_rewards", "num_iterations", "temperature", "top_p", "top_k", "min_p",
        "repetition_penalty", "max_completion_length", "generation_batch_size",
        "steps_per_generation", "mask_truncated_completions", "reward_weights",
        "disable_dropout", "shuffle_dataset", "log_completions", "num_completions_to_print",
        # training.scripts.grpo
        "reward_funcs", "answer_rule", "answer_tolerance", "failed_penalty",
        "code_call_budget", "code_call_penalty", "code_timeout_s", "code_workers",
        "credit_sandbox_answer", "max_code_calls", "max_problems", "notice_calls_left",
        "system_prompt", "think_prefix",
    )),
    "evaluate": frozenset((
        # training.scripts.evaluate: sampling, judging, batching (never the model or its server)
        "k", "temperature", "top_p", "max_new_tokens", "max_code_calls", "code_timeout_s",
        "rule", "tolerance", "mode", "batch_size", "concurrency", "dtype", "device", "seed",
        "ask_confidence", "credit_sandbox_answer", "max_problems", "system_prompt",
        "think_prefix",
    )),
}  # fmt: skip
_KIND_NAMES = {"sft": "an SFT run", "grpo": "a GRPO run", "evaluate": "an evaluation"}
# Where training metrics may go: this machine's own files, never a service elsewhere.
LOCAL_REPORTS = frozenset(("none", "tensorboard"))


def _override_refused(kind: str, key: str, value: Any) -> str | None:
    """Why an override of ``key`` with ``value`` is refused (None: it may be set)."""
    if key not in ALLOWED_OVERRIDES[kind]:
        return (
            f"{key} may not be set by overrides of {_KIND_NAMES[kind]} (they may set: "
            f"{', '.join(sorted(ALLOWED_OVERRIDES[kind]))})"
        )
    values = value if isinstance(value, list) else [value]
    if key == "report_to" and not set(map(str, values)) <= LOCAL_REPORTS:
        return f"report_to: metrics stay on this machine ({' or '.join(sorted(LOCAL_REPORTS))})"
    for item in values:
        if isinstance(item, str) and (item.startswith(("/", "~")) or ".." in item.split("/")):
            return f"{key}: paths outside the run folder are not allowed ({item!r})"
    return None


def overrides_check(overrides: dict[str, Any], kind: str) -> None:
    """Refuse, naming the key, an override that is not on the kind's allow-list."""
    owned = sorted(set(overrides) & set(APP_KEYS[kind]))
    if owned:
        raise ConfigError(f"set by the run itself, not by overrides: {', '.join(owned)}")
    for key, value in overrides.items():
        if not isinstance(key, str) or not key.replace("_", "").isalnum():
            raise ConfigError(f"{key!r} is not an argument name")
        if isinstance(value, dict):
            raise ConfigError(f"{key}: nested mappings are not arguments (the config is flat)")
        if refused := _override_refused(kind, key, value):
            raise ConfigError(refused)


def overrides_parse(text: str, kind: str) -> dict[str, Any]:
    """The overrides box: a flat YAML mapping of argument names. Clear errors, never a 500."""
    if not text.strip():
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"overrides are not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError("overrides must be a mapping: one 'name: value' per line")
    overrides_check(data, kind)
    return data


def config_merge(
    kind: str, preset: str, fields: dict[str, Any], overrides: dict[str, Any], owned: dict
) -> dict[str, Any]:
    """preset < run defaults < form fields (None: keep the preset's) < overrides < owned.

    The overrides are checked here too: a run created by a service call, or relaunched with
    overrides edited elsewhere, passes the same allow-list as the form."""
    overrides_check(overrides, kind)
    config = preset_load(kind, preset)
    config.update(RUN_DEFAULTS[kind])
    config.update({k: v for k, v in fields.items() if v is not None})
    config.update(overrides)
    config.update(owned)
    return config


def config_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=True, allow_unicode=True, default_flow_style=False)


def endpoint_model_args(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The keys that name the model, from an endpoint's spec (``ModelEndpoint.spec()``)."""
    backend = spec["backend"]
    if kind in ("sft", "grpo"):
        if backend not in ("transformers", "vllm"):
            raise ConfigError(
                f"training needs local weights: {spec['name']} is a {backend} endpoint "
                "(use one whose model is a local path)"
            )
        return {"model_name_or_path": spec["model"]}
    if backend == "scripted":
        raise ConfigError("the scripted stand-in is for tests, not for evaluation")
    # The whole spec goes in a file beside the config (the run's endpoint.json), so evaluation
    # talks to the model exactly as generation does (prompt mode, stops, chat rules).
    return {"model": spec["model"], "endpoint_spec": "endpoint.json"}


def command_for(
    kind: str,
    config_path: Path,
    *,
    metrics_path: Path,
    resume: str | None = None,
    accelerate_config: str = "",
    num_processes: int = 1,
) -> list[str]:
    """The argv of a run: ``python -m training.<kind> --config run.yaml ...``, under
    ``accelerate launch`` when an accelerate config is chosen."""
    script = ["-m", MODULES[kind], "--config", str(config_path)]
    script += ["--metrics_file", str(metrics_path)]
    if resume:
        script += ["--resume_from_checkpoint", resume]
    if not accelerate_config:
        return [sys.executable, *script]
    if accelerate_config not in accelerate_configs():
        raise ConfigError(f"unknown accelerate config {accelerate_config!r}")
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(ACCELERATE_DIR / f"{accelerate_config}.yaml"),
        "--num_processes", str(num_processes), *script,
    ]  # fmt: skip
