"""Model endpoints as the engine sees them: each endpoint's backend (cached per worker), its
prompts and rollout settings, the default Reasoner and Intervener, and the endpoints the app
sets up itself (the embedded llama.cpp model and one named by the environment; ``demo_setup``
and the loop benchmark both use these, so they talk to the embedded model exactly alike)."""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import asdict

from django.conf import settings

from curation.engine.serving import local_model

from .. import engine
from ..models import FlawType, ModelEndpoint

_BACKENDS: OrderedDict[tuple, object] = OrderedDict()
_MAX_CACHED_BACKENDS = 2


def backend_for(endpoint: ModelEndpoint):
    """The engine backend of an endpoint, cached per worker process.

    Loading a local model takes seconds to minutes; a GPU worker keeps the last two it used.
    """
    spec = endpoint.spec()
    if endpoint.backend == ModelEndpoint.Backend.OPENAI and local_model.serves(endpoint.base_url):
        # The embedded model's supervisor says how its server died, if it did.
        spec.setdefault("server_status_file", str(local_model.status_path()))
    if endpoint.backend == ModelEndpoint.Backend.SCRIPTED:
        return engine.load_backend(spec)  # stateful replay: never shared between jobs
    key = (endpoint.pk, repr(sorted(spec.items())))
    if key in _BACKENDS:
        _BACKENDS.move_to_end(key)
        return _BACKENDS[key]
    backend = engine.load_backend(spec)
    _BACKENDS[key] = backend
    while len(_BACKENDS) > _MAX_CACHED_BACKENDS:
        _, old = _BACKENDS.popitem(last=False)
        close = getattr(old, "close", None)
        if close:
            close()
    return backend


def endpoint_prompts(endpoint: ModelEndpoint) -> engine.Prompts:
    """The engine's default prompts with the endpoint's overrides; the flaw types' hint
    templates (admin-editable data) under the endpoint's own."""
    prompts = engine.Prompts.from_overrides(endpoint.prompts)
    templates = dict(
        FlawType.objects.filter(active=True).exclude(hint_template="")
        .values_list("code", "hint_template")
    )  # fmt: skip
    prompts.hint_templates = {**templates, **prompts.hint_templates}
    return prompts


def rollout_config(endpoint: ModelEndpoint, overrides: dict | None = None) -> engine.RolloutConfig:
    """Settings defaults < the endpoint's prompts and sampling < a job's or a batch's values."""
    prompts = engine.Prompts.from_overrides(endpoint.prompts)
    values = {
        **settings.CALM_ROLLOUT_DEFAULTS,
        "system_prompt": prompts.system_prompt,
        "worked_example": prompts.worked_example,
        **endpoint.sampling,
        **(overrides or {}),
    }
    known = set(engine.RolloutConfig.__dataclass_fields__)
    return engine.RolloutConfig(**{k: v for k, v in values.items() if k in known})


def endpoint_prompt_record(endpoint: ModelEndpoint) -> dict:
    """The prompts a Reasoner endpoint is sent (``engine.fingerprint.prompt_record``): what
    curation records on its trajectories, and what evaluation and GRPO of it send."""
    from ..engine.rollout import prompts_of

    return prompts_of(rollout_config(endpoint))


def endpoint_prompts_trained(base: ModelEndpoint, record: dict | None) -> tuple[dict, dict]:
    """The ``prompts`` and ``sampling`` of a checkpoint trained on data made with the prompt
    ``record``: the base endpoint's, with the record's system prompt, worked example, think
    prefix and chat-template arguments (so the checkpoint is evaluated on what it learnt)."""
    prompts, sampling = dict(base.prompts), dict(base.sampling)
    if not record:
        return prompts, sampling
    example = record.get("worked_example")
    prompts["system_prompt"] = record.get("system_prompt", "")
    prompts["worked_example"] = {"problem": example[0], "solution": example[1]} if example else ""
    sampling["think_prefix"] = record.get("think_prefix") or "auto"
    if record.get("chat_template_kwargs"):
        sampling["chat_template_kwargs"] = dict(record["chat_template_kwargs"])
    else:
        sampling.pop("chat_template_kwargs", None)
    return prompts, sampling


def reasoner_default() -> ModelEndpoint | None:
    return (
        ModelEndpoint.objects.filter(active=True, is_default_reasoner=True).first()
        or ModelEndpoint.objects.filter(active=True, role__in=["reasoner", "both"]).first()
    )


def intervener_default() -> ModelEndpoint | None:
    return (
        ModelEndpoint.objects.filter(active=True, is_default_intervener=True).first()
        or ModelEndpoint.objects.filter(active=True, role__in=["intervener", "both"]).first()
    )


def config_dict(config: engine.RolloutConfig) -> dict:
    """A rollout config as stored on a trajectory (its plain values)."""
    return {k: v for k, v in asdict(config).items() if isinstance(v, int | float | str | bool)}


def embedded_endpoint_values() -> dict | None:
    """The fields of the embedded model's endpoint (None when ``CALM_LOCAL_MODEL=off``)."""
    chosen = local_model.selected_model_name()
    if chosen is None:
        return None
    model = local_model.get_model(chosen)
    return {
        "name": f"local {model.name} (llama.cpp)",
        "backend": ModelEndpoint.Backend.OPENAI,
        "role": ModelEndpoint.Role.BOTH,
        "base_url": local_model.base_url(),
        "model": model.name,
        # llama-server takes token ids and returns them (its native /completion); the GGUF's
        # own tokenizer turns the problem into ids and the ids into text for the engine.
        "tokenizer": str(local_model.model_path(model)),
        "concurrency": local_model.n_slots(),  # keep the server's slots full, no more
        "context_length": local_model.n_ctx(),
        "sampling": {"max_new_tokens": 3072, "temperature": 0.2, "code_timeout_s": 10},
        "extra": {
            "completion_api": "llama.cpp",
            "stop_strings": ["\n```\n"],  # see the openai backend's docstring
            "request_timeout_s": 900,
        },
    }


def environment_endpoint_values() -> dict | None:
    """The endpoint named by ``CALM_DEFAULT_ENDPOINT_URL`` (+ ``_MODEL``, ``_API_KEY_ENV``,
    ``_TOKENIZER``), e.g. a vLLM server on a GPU host; None when unset."""
    url = os.environ.get("CALM_DEFAULT_ENDPOINT_URL")
    if not url:
        return None
    return {
        "name": "default (from the environment)",
        "backend": ModelEndpoint.Backend.OPENAI,
        "role": ModelEndpoint.Role.BOTH,
        "base_url": url,
        "model": os.environ.get("CALM_DEFAULT_ENDPOINT_MODEL", ""),
        "api_key_env": os.environ.get("CALM_DEFAULT_ENDPOINT_API_KEY_ENV", ""),
        "tokenizer": os.environ.get("CALM_DEFAULT_ENDPOINT_TOKENIZER", ""),
        "concurrency": 32,
    }
