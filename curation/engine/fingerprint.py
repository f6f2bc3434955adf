"""Which tokenizer made a list of token ids, and which prompts: a golden set is one model's data.

Token ids mean something only for the vocabulary and chat template that produced them: golden
data from a Qwen2.5 ChatML tokenizer (``<think>`` as several BPE pieces) trained into a Qwen3
model teaches it a foreign format without any error. ``tokenizer_fingerprint`` names a tokenizer
by what decides the ids (its vocabulary, its special and added tokens, its chat template), so a
trajectory, a dataset and a base model can be compared before anything is trained.

``prompt_record`` is the set of prompts a trajectory was made with (system prompt, worked
example, think prefix, chat-template arguments): training, evaluation and GRPO of a model trained
on it send the same ones by default.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

UNKNOWN = ""  # a tokenizer the engine cannot read (a server-side one): nothing to compare


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 (hex) of the vocabulary (token -> id), the special and added tokens and the chat
    template; ``UNKNOWN`` when the tokenizer does not expose its vocabulary."""
    get_vocab = getattr(tokenizer, "get_vocab", None)
    if get_vocab is None:
        return UNKNOWN
    try:
        vocab = get_vocab()
    except Exception:  # a remote tokenizer that cannot list its vocabulary
        return UNKNOWN
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    special = {
        str(index): [str(getattr(token, "content", token)), bool(getattr(token, "special", True))]
        for index, token in added.items()
    }
    template = getattr(tokenizer, "chat_template", None)
    digest = hashlib.sha256()
    digest.update(json.dumps(sorted(vocab.items(), key=lambda kv: (kv[1], kv[0]))).encode())
    digest.update(b"\x00special\x00")
    digest.update(json.dumps(special, sort_keys=True).encode())
    digest.update(b"\x00template\x00")
    digest.update(json.dumps(template, sort_keys=True).encode())
    return digest.hexdigest()


def backend_fingerprint(backend: Any) -> str:
    """The fingerprint of a backend's tokenizer, computed once per backend object (a 150k
    vocabulary takes a tenth of a second to hash)."""
    cached = getattr(backend, "_calm_tokenizer_fingerprint", None)
    if cached is None:
        cached = tokenizer_fingerprint(getattr(backend, "tokenizer", None))
        with contextlib.suppress(AttributeError):  # __slots__: computed each time then
            backend._calm_tokenizer_fingerprint = cached
    return cached


def short(fingerprint: str) -> str:
    """How a fingerprint is shown: its first 12 hex digits, or "unrecorded"."""
    return fingerprint[:12] if fingerprint else "unrecorded"


def prompt_record(
    *,
    system_prompt: str,
    worked_example: tuple[str, str] | list[str] | None,
    think_prefix: str,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The prompts a trajectory is made with, as stored on it and on a dataset, with their
    digest (``id``): what decides the prompt ids besides the problem and the tokenizer."""
    record = {
        "system_prompt": system_prompt or "",
        "worked_example": list(worked_example) if worked_example else None,
        "think_prefix": think_prefix,
        "chat_template_kwargs": dict(chat_template_kwargs or {}),
    }
    record["id"] = prompts_digest(record)
    return record


def prompt_settings(record: dict[str, Any] | None) -> dict[str, Any]:
    """The ``RolloutConfig`` values of a prompt record (what evaluation and GRPO read from the
    ``prompts.json`` the app writes beside a run); empty for none."""
    if not record:
        return {}
    out: dict[str, Any] = {}
    if "system_prompt" in record:
        out["system_prompt"] = str(record["system_prompt"] or "")
    if "worked_example" in record:
        example = record["worked_example"]
        out["worked_example"] = (str(example[0]), str(example[1])) if example else None
    if record.get("think_prefix") is not None:
        out["think_prefix"] = str(record["think_prefix"])
    if record.get("chat_template_kwargs"):
        out["chat_template_kwargs"] = dict(record["chat_template_kwargs"])
    return out


def load_prompt_record(path: str | None) -> dict[str, Any]:
    """A prompt record from a JSON file (``{}`` when ``path`` is empty)."""
    if not path:
        return {}
    from pathlib import Path

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a prompt record is a JSON object")
    return data


def prompts_digest(record: dict[str, Any] | None) -> str:
    """12 hex digits naming a prompt record (empty for none)."""
    if not record:
        return ""
    body = {k: v for k, v in record.items() if k != "id"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
