"""Model endpoints the app sets up itself: the embedded llama.cpp model and one named by the
environment. ``demo_setup`` and the loop benchmark both use these, so they talk to the embedded
model exactly alike."""

from __future__ import annotations

import os

from calm_studio import local_model

from ..models import ModelEndpoint


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
        # llama.cpp takes text prompts only and drops special tokens when it detokenizes: the
        # engine keeps token ids with the GGUF's own tokenizer.
        "tokenizer": str(local_model.model_path(model)),
        "concurrency": 1,
        "context_length": local_model.n_ctx(),
        "sampling": {"max_new_tokens": 3072, "temperature": 0.2, "code_timeout_s": 10},
        "extra": {
            "token_prompts": False,
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
