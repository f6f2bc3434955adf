"""A SCRIPTED STAND-IN for a language model: for exact orchestration tests and benchmarks only.

It generates nothing. It replays the completions it was given, one per ``generate`` request,
with the same stop rules a real backend applies (closing ```python fence, EOS, max_new_tokens);
it answers ``chat`` with given strings, can be told to time out, and can add latency.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .base import (
    Backend,
    BackendTimeoutError,
    GenerationRequest,
    GenerationResult,
    OnTokens,
    cut_at_code_close,
)

Script = str | list[int]


class ScriptedBackend(Backend):
    """A scripted stand-in for a language model (NOT a model).

    - ``completions``: the model turns to replay, in order, one per request (texts or token
      ids), or a callable ``(request, prompt_text) -> str | list[int]``. When a turn runs past
      the closing fence of a ```python block, the rest is kept for that same sequence (the
      next request whose prompt extends this one), so a whole trajectory can be scripted as
      one text, also in a batch. A turn that ends otherwise ends with EOS (added if missing).
    - ``chat_replies``: what ``chat`` answers, in order.
    - ``chat_rules``: ``(text, reply)`` pairs: ``chat`` answers the reply of the first rule whose
      text appears in the conversation (an empty text matches always), before ``chat_replies``.
    - ``timeouts`` / ``chat_timeouts``: the first N calls raise ``BackendTimeoutError``.
    - ``latency_s``: sleep this long per call (benchmarks).
    - ``stream_tokens`` / ``stream_delay_s``: report each turn's tokens through ``on_tokens``
      this many at a time, sleeping between reports (a slow model decoding, for live views).

    ``calls`` and ``chat_calls`` record what was asked, for assertions.
    """

    def __init__(
        self,
        tokenizer: Any,
        completions: Sequence[Script] | Callable[[GenerationRequest, str], Script] = (),
        *,
        chat_replies: Sequence[str] = (),
        timeouts: int = 0,
        chat_timeouts: int = 0,
        latency_s: float = 0.0,
        chat_rules: Sequence[tuple[str, str]] = (),
        eos_token_ids: Sequence[int] | None = None,
        stream_tokens: int = 0,
        stream_delay_s: float = 0.0,
        spec: dict[str, Any] | None = None,
    ):
        super().__init__(spec or {"name": "scripted"})
        self.tokenizer = tokenizer
        self._script = completions if callable(completions) else None
        self._queue: deque[Script] = deque([] if callable(completions) else completions)
        self._chat = deque(chat_replies)
        self._timeouts = timeouts
        self._chat_timeouts = chat_timeouts
        self.latency_s = latency_s
        self.stream_tokens = max(0, int(stream_tokens))
        self.stream_delay_s = stream_delay_s
        self.chat_rules = [(str(needle), str(reply)) for needle, reply in chat_rules]
        if eos_token_ids is None:
            eos = getattr(tokenizer, "eos_token_id", None)
            eos_token_ids = [eos] if eos is not None else []
        self.eos_token_ids = list(eos_token_ids)
        self._rest: list[tuple[list[int], list[int]]] = []  # (prompt so far, what is left)
        self.calls: list[list[GenerationRequest]] = []
        self.chat_calls: list[list[dict[str, str]]] = []

    streams = True

    def generate(
        self, requests: Sequence[GenerationRequest], *, on_tokens: OnTokens | None = None
    ) -> list[GenerationResult]:
        self.calls.append(list(requests))
        if self.latency_s:
            time.sleep(self.latency_s)
        if self._timeouts > 0:
            self._timeouts -= 1
            raise BackendTimeoutError("scripted stand-in: the endpoint timed out")
        results = [self._one(r) for r in requests]
        if on_tokens is not None and self.stream_tokens:
            self._stream(results, on_tokens)
        return results

    def _stream(self, results: list[GenerationResult], on_tokens: OnTokens) -> None:
        """Hand out the finished turns a few tokens at a time, as a decoding model would."""
        longest = max((len(r.token_ids) for r in results), default=0)
        for end in range(self.stream_tokens, longest + self.stream_tokens, self.stream_tokens):
            for k, result in enumerate(results):
                if end - self.stream_tokens < len(result.token_ids):
                    on_tokens(k, list(result.token_ids[:end]))
            if self.stream_delay_s:
                time.sleep(self.stream_delay_s)

    def _one(self, request: GenerationRequest) -> GenerationResult:
        rest = self._take_rest(request.prompt_ids)
        if rest is not None:
            item: Script = rest
        elif self._script is not None:
            item = self._script(request, self.decode(request.prompt_ids))
        elif self._queue:
            item = self._queue.popleft()
        else:
            return GenerationResult([], "error", error="scripted stand-in: script exhausted")
        ids = self.encode(item) if isinstance(item, str) else list(item)
        full = ids
        closed = False
        if request.stop_at_code:
            ids, closed = cut_at_code_close(self.decode, ids, request.fence)
        eos_at = next((i for i, t in enumerate(ids) if t in self.eos_token_ids), None)
        if eos_at is not None:
            ids, closed = ids[: eos_at + 1], False
        reason = "code" if closed else "eos"
        if closed and len(full) > len(ids):
            self._rest.append((list(request.prompt_ids) + ids, full[len(ids) :]))
        if reason == "eos" and eos_at is None and self.eos_token_ids:
            ids = [*ids, self.eos_token_ids[0]]
        if len(ids) > request.max_new_tokens:
            ids, reason = ids[: request.max_new_tokens], "length"
        return GenerationResult(ids, reason, text=self.decode(ids))

    def _take_rest(self, prompt_ids: list[int]) -> list[int] | None:
        for i, (key, rest) in enumerate(self._rest):
            if prompt_ids[: len(key)] == key:
                del self._rest[i]
                return rest
        return None

    def chat(self, messages: list[dict[str, str]], **sampling: Any) -> str:
        self.chat_calls.append(list(messages))
        if self.latency_s:
            time.sleep(self.latency_s)
        if self._chat_timeouts > 0:
            self._chat_timeouts -= 1
            raise BackendTimeoutError("scripted stand-in: the endpoint timed out")
        if self.chat_rules:
            # First rule whose text appears in the conversation: a stand-in that "reads" the
            # trajectory, for loops that ask it again and again (the CALM batch).
            seen = "\n".join(m.get("content", "") for m in messages)
            for needle, reply in self.chat_rules:
                if needle in seen:
                    return reply
        if not self._chat:
            raise RuntimeError("scripted stand-in: no chat reply left")
        return self._chat.popleft()
