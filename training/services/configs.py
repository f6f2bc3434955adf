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


# Overrides that would run code from a model repository, publish the weights, or write or read
# outside the run folder are refused whatever their value.
FORBIDDEN_OVERRIDES = ("trust_remote_code", "push_to_hub", "hub_", "resume_from_checkpoint")


def _override_refused(key: str, value: Any) -> str | None:
    if key.startswith(FORBIDDEN_OVERRIDES):
        return f"{key} may not be set by overrides"
    if isinstance(value, str) and (value.startswith(("/", "~")) or ".." in value.split("/")):
        return f"{key}: paths outside the run folder are not allowed ({value!r})"
    return None


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
    owned = sorted(set(data) & set(APP_KEYS[kind]))
    if owned:
        raise ConfigError(f"set by the run itself, not by overrides: {', '.join(owned)}")
    for key, value in data.items():
        if not isinstance(key, str) or not key.replace("_", "").isalnum():
            raise ConfigError(f"{key!r} is not an argument name")
        if isinstance(value, dict):
            raise ConfigError(f"{key}: nested mappings are not arguments (the config is flat)")
        if refused := _override_refused(key, value):
            raise ConfigError(refused)
    return data


def config_merge(
    kind: str, preset: str, fields: dict[str, Any], overrides: dict[str, Any], owned: dict
) -> dict[str, Any]:
    """preset < run defaults < form fields (None: keep the preset's) < overrides < owned."""
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
