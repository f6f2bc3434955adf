"""Model backends behind one interface. Heavy libraries (torch, transformers, httpx, vllm) are
imported only when a backend of that kind is built."""

from __future__ import annotations

from typing import Any

from .base import (
    Backend,
    BackendError,
    BackendTimeoutError,
    GenerationRequest,
    GenerationResult,
)

BACKENDS = ("transformers", "openai", "vllm", "scripted")

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "BackendTimeoutError",
    "GenerationRequest",
    "GenerationResult",
    "load_backend",
]


def load_backend(spec: dict[str, Any]) -> Backend:
    """Build a backend from an endpoint spec dict.

    Keys: ``backend`` ("transformers" | "openai" | "vllm" | "scripted"), ``model`` (local path
    or served model name), ``base_url``, ``api_key_env`` (the NAME of the environment variable
    holding the key), ``tokenizer`` (local path), ``chat_template`` (Jinja override),
    ``sampling`` (temperature, top_p, seed, ...), ``context_length``, ``concurrency``; other
    keys are backend-specific extras (see each backend) and unknown ones are ignored.

    A ``scripted`` spec builds the scripted stand-in from ``completions``, ``chat_replies``,
    ``latency_s``, ``timeouts``, ``chat_timeouts``, ``stream_tokens`` and ``stream_delay_s``
    with the tokenizer at ``tokenizer`` (or ``model``).
    """
    kind = spec.get("backend")
    if kind == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend(spec)
    if kind == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(spec)
    if kind == "vllm":
        from .vllm_backend import VLLMBackend

        return VLLMBackend(spec)
    if kind == "scripted":
        from transformers import AutoTokenizer

        from .scripted import ScriptedBackend

        tokenizer = AutoTokenizer.from_pretrained(spec.get("tokenizer") or spec["model"])
        return ScriptedBackend(
            tokenizer,
            spec.get("completions") or [],
            chat_replies=spec.get("chat_replies") or [],
            latency_s=float(spec.get("latency_s") or 0.0),
            timeouts=int(spec.get("timeouts") or 0),
            chat_timeouts=int(spec.get("chat_timeouts") or 0),
            chat_rules=[tuple(rule) for rule in spec.get("chat_rules") or []],
            stream_tokens=int(spec.get("stream_tokens") or 0),
            stream_delay_s=float(spec.get("stream_delay_s") or 0.0),
            spec=spec,
        )
    raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
