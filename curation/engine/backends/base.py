"""The one interface every model backend offers, and the stop logic they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..format import FENCE, FenceState, IncrementalDecoder, decode_with_offsets, scan_fences

# Why a generation ended: "code" (a ```python block closed), "eos", "length" (its
# max_new_tokens), "error" (the backend failed; see ``error``).
FINISH_REASONS = ("code", "eos", "length", "error")
FENCE_STOP = [FENCE]  # stop strings for servers: every fence, the engine decides (see below)


class BackendError(RuntimeError):
    """A backend could not produce an answer (after its retries)."""


class BackendTimeoutError(BackendError):
    """The model server did not answer in time, every time we asked."""


@dataclass
class GenerationRequest:
    """Generate after ``prompt_ids`` (the chat prompt plus the completion so far).

    ``fence`` is the fence state of the text already in the completion, so that a block opened
    before this call (by a hint ending in "```python") is recognized when it closes.
    Sampling fields left None take the endpoint's defaults.
    """

    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop_at_code: bool = True
    fence: FenceState = field(default_factory=FenceState)


@dataclass
class GenerationResult:
    """New token ids only (never the prompt) and why generation stopped."""

    token_ids: list[int]
    finish_reason: str
    text: str = ""
    error: str | None = None
    # What the route could not guarantee on this call (e.g. the server tokenized the text it
    # was sent differently from the stored ids): recorded on the trajectory.
    warnings: list[dict[str, Any]] = field(default_factory=list)


# ``on_tokens(k, ids)``: the ids request ``k`` has generated so far in this call (a preview for
# people watching: the result's ``token_ids`` stay the only truth about what was generated).
OnTokens = Callable[[int, list[int]], None]


class Backend(ABC):
    """A language model the engine can drive.

    ``tokenizer`` is HF-style (``encode``, ``decode``, ``apply_chat_template``); ``generate``
    works on token ids and stops each sequence at the closing fence of a ```python block, at
    EOS or at its ``max_new_tokens``; ``chat`` answers a list of messages with text (for the
    Intervener).
    """

    name: str = ""
    # True when ``generate`` takes ``on_tokens`` and reports tokens while it decodes; the
    # others (a server route without streaming) are called without it, and previews then
    # grow at each call's end.
    streams: bool = False
    tokenizer: Any = None
    eos_token_ids: list[int]
    context_length: int | None = None
    sampling: dict[str, Any]

    def __init__(self, spec: dict[str, Any] | None = None):
        spec = spec or {}
        self.spec = spec
        self.name = spec.get("name") or spec.get("model") or type(self).__name__
        self.sampling = dict(spec.get("sampling") or {})
        self.context_length = spec.get("context_length") or None
        self.eos_token_ids = []

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order. Failures come back as ``finish_reason="error"``
        results rather than exceptions, so one bad request does not sink a batch."""

    @abstractmethod
    def chat(self, messages: list[dict[str, str]], **sampling: Any) -> str:
        """The assistant's reply text. Raises ``BackendError`` when no reply could be had."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release what the backend holds (connections, GPU memory)."""

    # --- token helpers the engine uses (no re-tokenizing of stored prefixes happens here) ---

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def chat_prompt_ids(self, messages: list[dict[str, str]], **template_kwargs: Any) -> list[int]:
        """Token ids of ``messages`` through the chat template with the generation prompt."""
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False, **template_kwargs
        )
        return self.encode(text)

    def sampling_value(self, request_value: Any, key: str, default: Any = None) -> Any:
        return request_value if request_value is not None else self.sampling.get(key, default)


# --- stop logic -------------------------------------------------------------------------------


class FenceStopper:
    """Fed the new tokens of one sequence as they come; says when a ```python block closes."""

    def __init__(self, decode, fence: FenceState):
        self._dec = IncrementalDecoder(decode)
        self._fence = fence
        self.closed = False

    def feed(self, ids: Sequence[int]) -> bool:
        if not self.closed:
            text = self._dec.push(ids)
            if text:
                self._fence, close = scan_fences(text, self._fence)
                self.closed = close is not None
        return self.closed


def cut_at_code_close(decode, ids: list[int], fence: FenceState) -> tuple[list[int], bool]:
    """``ids`` up to and including the token that closes a ```python block, and whether one
    closed (a server's stop string may have let a few more tokens through)."""
    text, offsets = decode_with_offsets(decode, ids)
    _, close = scan_fences(text, fence)
    if close is None:
        return ids, False
    k = next(i for i in range(len(ids)) if offsets[i + 1] >= close)
    return ids[: k + 1], True


class Resume:
    """One request generated through a server that stops at every fence line: since a stop
    string cannot tell a closing python fence from any other fence, each stop is checked here
    and generation resumes from the extended prefix until a python block closes, EOS or the
    budget. Used by the ``openai`` and ``vllm`` backends."""

    def __init__(self, request: GenerationRequest, decode, eos_ids: Sequence[int]):
        self.request = request
        self.ids: list[int] = []
        self._decode = decode
        self._eos = set(eos_ids)
        self._fence = request.fence
        self.result: GenerationResult | None = None
        self.warnings: list[dict[str, Any]] = []

    @property
    def prompt_ids(self) -> list[int]:
        return self.request.prompt_ids + self.ids

    @property
    def fence(self) -> FenceState:
        """Where the fences stand at the end of the current prefix."""
        return self._fence

    @property
    def remaining(self) -> int:
        return self.request.max_new_tokens - len(self.ids)

    def absorb(self, ids: list[int], finish: str, error: str | None = None) -> bool:
        """Take one server answer (``finish``: "stop" at a stop string, "eos", "length",
        "error"). Returns True when the request is done (``self.result`` is set)."""
        if finish == "error":
            return self._done("error", error)
        ids = ids[: max(self.remaining, 0)]
        closed = False
        if self.request.stop_at_code and ids:
            ids, closed = cut_at_code_close(self._decode, ids, self._fence)
            if not closed:
                self._fence = _advance(self._decode, ids, self._fence)
        self.ids.extend(ids)
        if closed:
            return self._done("code")
        if ids and ids[-1] in self._eos:
            return self._done("eos")
        if finish == "eos" or (finish == "stop" and not ids):
            return self._done("eos")
        if self.remaining <= 0 or finish == "length":
            return self._done("length")
        return False  # stopped at a fence that closes no python block: keep going

    def _done(self, reason: str, error: str | None = None) -> bool:
        self.result = GenerationResult(
            token_ids=self.ids, finish_reason=reason, text=self._decode(self.ids), error=error,
            warnings=self.warnings,
        )  # fmt: skip
        return True


def _advance(decode, ids: Sequence[int], fence: FenceState) -> FenceState:
    return scan_fences(decode(list(ids)), fence)[0]
