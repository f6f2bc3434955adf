"""Any OpenAI-compatible server over HTTP: vLLM serve, SGLang, llama.cpp, a cloud API, or
``python -m curation.engine.serving.checkpoint_server``.

Token-id route, best first:
1. prompt as token ids (vLLM, SGLang, llama.cpp and our serve accept a list of ints) and the
   generated ids back (``return_token_ids``: vLLM >= 0.10 and our serve);
2. otherwise text in and out, the text turned into ids by a local tokenizer (the spec's
   ``tokenizer`` path, or ``model`` when it is a local folder) or by the server's tokenize
   endpoint (``/tokenize`` on vLLM and our serve, ``/extras/tokenize`` on llama-cpp-python).

What the text route guarantees (llama.cpp's server takes text prompts only): the stored ids
are the local tokenizer's encoding of the text the server returned, and the server conditions
on its own tokenization of ``decode(stored ids)``. The two agree exactly when the server's
tokenizer splits the sent text into the stored ids; every call checks this with the server's
own tokenize endpoint and, when they differ, the result carries a ``retokenized`` warning
(first differing position, both lengths) that the trajectory records and shows. The end of
sequence, which the server does not return as text, is appended as the tokenizer's EOS id, so
a stored record teaches the model to stop.

llama.cpp's own server (``llama-server``, the embedded model) is spoken to on its native
``/completion`` when the spec says ``completion_api: "llama.cpp"``: token ids in, token ids out
(``return_tokens``), so its records are exact like vLLM's; the text route stays for servers that
only speak text.

Spec extras: ``completion_api`` ("openai" | "llama.cpp"), ``token_prompts`` ("auto" | true |
false), ``stop_strings`` (default ["```"];
llama.cpp: ["\n```\n"]), ``request_timeout_s`` (600),
``max_retries`` (3), ``retry_backoff_s`` (1.0), ``eos_token_ids``, ``check_retokenization``
(true), ``server_status_file`` (the embedded model's supervisor status: a connection failure
then names how the server died).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from ..format import FenceState, scan_fences
from ..serving.status import server_down_message
from .api_keys import api_key_env_error
from .base import (
    FENCE_STOP,
    Backend,
    BackendError,
    BackendTimeoutError,
    GenerationRequest,
    GenerationResult,
    OnTokens,
    Resume,
)

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
COMPLETION_APIS = ("openai", "llama.cpp")


class _BadAnswer(BackendError):
    """The server answered, but not usefully (4xx, malformed JSON): never retried."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _roots(base_url: str) -> tuple[str, str]:
    base = base_url.rstrip("/")
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    return root, root + "/v1"


class OpenAIBackend(Backend):
    """Completions over HTTP with many requests in flight (async, a semaphore of
    ``concurrency``), retries with backoff on timeouts, connection errors, 429 and 5xx."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        import httpx

        self._httpx = httpx
        if not spec.get("base_url"):
            raise ValueError("an openai endpoint needs base_url")
        self.root, self.api = _roots(spec["base_url"])
        self.model = spec.get("model") or ""
        key_env = spec.get("api_key_env") or ""
        if refused := api_key_env_error(key_env):
            raise ValueError(refused)
        key = os.environ.get(key_env, "") if key_env else ""
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.concurrency = max(1, int(spec.get("concurrency") or 8))
        self.timeout_s = float(spec.get("request_timeout_s") or 600)
        self.max_retries = int(spec.get("max_retries", 3))
        self.backoff_s = float(spec.get("retry_backoff_s", 1.0))
        # Fence stop strings. The default stops at every fence and lets the engine decide; a
        # server that drops matched stop strings and also stops at *opening* fences (llama.cpp)
        # is given "\n```\n", which only a closing fence (or a bare plain fence) matches.
        self.stop_strings = list(spec.get("stop_strings") or FENCE_STOP)
        mode = spec.get("token_prompts", "auto")  # "auto": try ids, fall back to text once
        self._token_prompts: bool | None = None if mode == "auto" else bool(mode)
        # "llama.cpp": llama-server's own /completion, token ids in and out (the embedded model).
        self.completion_api = str(spec.get("completion_api") or "openai")
        if self.completion_api not in COMPLETION_APIS:
            raise ValueError(
                f"completion_api {self.completion_api!r}: use {' or '.join(COMPLETION_APIS)}"
            )
        self.tokenizer = self._load_tokenizer(spec)
        if spec.get("chat_template") and hasattr(self.tokenizer, "chat_template"):
            self.tokenizer.chat_template = spec["chat_template"]
        eos = spec.get("eos_token_ids")
        if eos is None:
            eos = _eos_ids(self.tokenizer)
        self.eos_token_ids = list(eos)
        # The id stored where a text-only server ended the sequence: the chat format's end of
        # turn when the tokenizer has one (what a chat model emits and must learn to emit).
        self.eos_append_id = spec.get("eos_append_id")
        if self.eos_append_id is None:
            self.eos_append_id = _turn_end_id(self.tokenizer, self.eos_token_ids)
        self.check_retokenization = bool(spec.get("check_retokenization", True))
        self.server_status_file = spec.get("server_status_file") or ""
        self._server_tokenizer = (
            self.tokenizer if isinstance(self.tokenizer, RemoteTokenizer) else RemoteTokenizer(self)
        )

    def _load_tokenizer(self, spec: dict[str, Any]) -> Any:
        path = spec.get("tokenizer") or (
            spec.get("model") if Path(spec.get("model") or "").is_dir() else ""
        )
        if path:
            return load_tokenizer(path)
        return RemoteTokenizer(self)

    # --- HTTP with retries ------------------------------------------------------------------

    async def _post(self, client, url: str, body: dict[str, Any]) -> dict[str, Any]:
        httpx = self._httpx
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                resp = await client.post(url, json=body, headers=self.headers)
            except httpx.TimeoutException as exc:
                last = f"timed out ({type(exc).__name__})"
                continue
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code == 500 and "validation error" in resp.text.lower():
                # llama-cpp-python's server answers a malformed request (a token-id prompt)
                # with 500: it is a refusal, not an outage, so do not retry it.
                raise _BadAnswer(f"HTTP 500: {resp.text[:500]}", 422)
            if resp.status_code in RETRY_STATUS:
                last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                continue
            if resp.status_code >= 400:
                raise _BadAnswer(f"HTTP {resp.status_code}: {resp.text[:500]}", resp.status_code)
            try:
                return resp.json()
            except ValueError as exc:
                raise _BadAnswer(f"not JSON: {resp.text[:200]}") from exc
        kind = BackendTimeoutError if last.startswith("timed out") else BackendError
        message = f"{url}: no answer after {self.max_retries + 1} attempts; last: {last}"
        down = server_down_message(self.server_status_file) if self.server_status_file else None
        if down:  # say how the server died rather than only that it does not answer
            message = f"{down} ({message})"
        raise kind(message)

    def _client(self):
        return self._httpx.AsyncClient(timeout=self.timeout_s)

    def post_sync(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to ``root + path`` with the same retries (tokenizer endpoints, chat)."""

        async def go():
            async with self._client() as client:
                return await self._post(client, self.root + path, body)

        return _run(go())

    # --- generation -------------------------------------------------------------------------

    @property
    def streams(self) -> bool:  # type: ignore[override]
        """llama-server's native route streams its tokens (a preview while it decodes); the
        OpenAI routes are called without ``on_tokens``."""
        return self.completion_api == "llama.cpp"

    def generate(
        self, requests: Sequence[GenerationRequest], *, on_tokens: OnTokens | None = None
    ) -> list[GenerationResult]:
        def go(report: OnTokens | None):
            async def all_requests():
                sem = asyncio.Semaphore(self.concurrency)
                async with self._client() as client:
                    return await asyncio.gather(*(
                        self._one(client, sem, r, None if report is None else partial(report, k))
                        for k, r in enumerate(requests)
                    ))  # fmt: skip

            return all_requests()

        if on_tokens is None:
            return list(_run(go(None)))
        return list(_run_reporting(go, on_tokens))

    async def _one(
        self, client, sem, request: GenerationRequest, report: Callable | None = None
    ) -> GenerationResult:
        state = Resume(request, self.decode, self.eos_token_ids)
        while True:
            try:
                async with sem:
                    ids, finish, warnings = await self._complete(
                        client, state.prompt_ids, state.remaining, request, state.fence,
                        report=None if report is None else (lambda new: report(state.ids + new)),
                    )  # fmt: skip
            except BackendError as exc:
                state.absorb([], "error", str(exc))
            else:
                state.warnings.extend(warnings)
                state.absorb(ids, finish)
            if state.result is not None:
                return state.result

    async def _complete(
        self, client, prompt_ids, max_tokens, request, fence: FenceState, report=None
    ) -> tuple[list[int], str, list[dict[str, Any]]]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "temperature": self.sampling_value(request.temperature, "temperature", 1.0),
            "top_p": self.sampling_value(request.top_p, "top_p", 1.0),
            "stop": self.stop_strings if request.stop_at_code else [],
            # vLLM extensions (ignored by servers that do not know them):
            "include_stop_str_in_output": True,
            "skip_special_tokens": False,
            "return_token_ids": True,
        }
        seed = self.sampling_value(request.seed, "seed")
        if seed is not None:
            body["seed"] = int(seed)
        if self.completion_api == "llama.cpp":
            ids, finish = await self._complete_llama(client, prompt_ids, body, report=report)
            return ids, finish, []
        url = self.api + "/completions"
        data = None
        if self._token_prompts is not False:
            try:
                data = await self._post(client, url, {**body, "prompt": list(prompt_ids)})
                self._token_prompts = True
            except _BadAnswer as exc:
                if self._token_prompts is True or exc.status not in (400, 422):
                    raise
                self._token_prompts = False  # this server takes text prompts only
        if data is not None:
            ids, finish = await self._parse(client, data, fence)
            return ids, finish, []
        text = self.decode(prompt_ids)
        data = await self._post(client, url, {**body, "prompt": text})
        warnings = await self._check_retokenization(client, text, prompt_ids)
        ids, finish = await self._parse(client, data, fence, text_route=True)
        return ids, finish, warnings

    async def _complete_llama(
        self, client, prompt_ids: Sequence[int], body: dict[str, Any], report=None
    ) -> tuple[list[int], str]:
        """llama-server's native ``/completion``: the prompt goes as token ids, the generated
        ids come back (``return_tokens``), stop strings included (the text drops them, the
        ids do not), the end-of-sequence token included. The slot keeps the prompt's cache.

        With ``report`` (someone watches), the answer is streamed and ``report(ids)`` gets the
        ids so far (``_stream_llama``)."""
        native: dict[str, Any] = {
            "prompt": [int(i) for i in prompt_ids],
            "n_predict": body["max_tokens"],
            "temperature": body["temperature"],
            "top_p": body["top_p"],
            "stop": body["stop"],
            "return_tokens": True,
            "cache_prompt": True,
            "stream": False,
        }
        if "seed" in body:
            native["seed"] = body["seed"]
        data = None
        if report is not None:
            data = await self._stream_llama(client, native, report)
        if data is None:
            data = await self._post(client, self.root + "/completion", native)
        ids = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(ids, list):
            raise _BadAnswer(f"no tokens in the llama.cpp answer {str(data)[:200]}")
        stop_type = data.get("stop_type")
        finish = {"word": "stop", "eos": "eos", "limit": "length"}.get(stop_type, "length")
        return [int(i) for i in ids], finish

    async def _stream_llama(self, client, native: dict[str, Any], report) -> dict | None:
        """The native answer streamed: each event carries its token's id, ``report`` sees the
        ids so far, and the answer comes back shaped like the unstreamed one. None when the
        stream cannot be trusted to hold every id: llama-server sends no event for a token
        that ends inside a UTF-8 character, so when the ids received fall short of the count
        it generated (``tokens_predicted``) the caller asks again unstreamed (the stored ids
        are only ever exact ones). Also None on any transport failure: the plain request has
        the retries."""
        httpx = self._httpx
        ids: list[int] = []
        final: dict[str, Any] | None = None
        try:
            async with client.stream(
                "POST", self.root + "/completion", json={**native, "stream": True},
                headers=self.headers,
            ) as resp:  # fmt: skip
                if resp.status_code != 200:
                    return None
                async for line in resp.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[6:])
                    new = event.get("tokens") or []
                    if new:
                        ids.extend(int(i) for i in new)
                        report(list(ids))
                    if event.get("stop"):
                        final = event
                        break
        except (httpx.HTTPError, ValueError, TypeError):
            return None
        if final is None or final.get("tokens_predicted") != len(ids):
            predicted = None if final is None else final.get("tokens_predicted")
            log.info("llama.cpp stream held back token ids (%s of %s): asking unstreamed",
                     len(ids), predicted)  # fmt: skip
            return None
        return {"tokens": ids, "stop_type": final.get("stop_type")}

    async def _check_retokenization(
        self, client, text: str, stored: Sequence[int]
    ) -> list[dict[str, Any]]:
        """Compare the server's tokenization of the text sent with the stored ids."""
        if not self.check_retokenization:
            return []
        try:
            server = await self._server_tokenizer.encode_async(client, text)
        except BackendError as exc:
            return [{"kind": "retokenization_unchecked", "detail": str(exc)[:300]}]
        stored = list(stored)
        if server == stored:
            return []
        first = next(
            (i for i, (a, b) in enumerate(zip(server, stored, strict=False)) if a != b),
            min(len(server), len(stored)),
        )
        return [
            {"kind": "retokenized", "first_difference": first, "stored": len(stored),
             "server": len(server)}
        ]  # fmt: skip

    async def _parse(
        self,
        client,
        data: dict[str, Any],
        fence: FenceState | None = None,
        *,
        text_route: bool = False,
    ) -> tuple[list[int], str]:
        try:
            choice = data["choices"][0]
        except (KeyError, IndexError, TypeError) as exc:
            raise _BadAnswer(f"no choices in {str(data)[:200]}") from exc
        text = choice.get("text") or ""
        ids = choice.get("token_ids")
        stop_reason = choice.get("stop_reason")
        finish = choice.get("finish_reason") or "stop"
        if finish == "stop":
            if isinstance(stop_reason, str):
                if not ids and not text.endswith(stop_reason):
                    text += stop_reason  # the server dropped the matched stop string
            elif "stop_reason" in choice or (ids and ids[-1] in self.eos_token_ids):
                finish = "eos"  # vLLM: stop_reason None is EOS, an int a stop token
            elif not any(text.endswith(stop) for stop in self.stop_strings):
                # A server that says neither (llama.cpp) also drops the matched stop string.
                # Inside an open python block a stop can only be its closing fence, which
                # the model was writing; anywhere else it is taken as end of sequence.
                if scan_fences(text, fence or FenceState())[0].open == "python":
                    text += self.stop_strings[0]
                else:
                    finish = "eos"
        elif finish != "length":
            finish = "eos"
        if ids is None:
            ids = await self._tokenize_async(client, text) if text else []
        ids = [int(i) for i in ids]
        if text_route and finish == "eos":
            ids, finish = await self._text_route_stop(client, data, text, ids)
        return ids, finish

    async def _text_route_stop(
        self, client, data, text: str, ids: list[int]
    ) -> tuple[list[int], str]:
        """A text-only server ended with "stop" and said neither why nor which: at the end of
        sequence (the EOS token is not in its text: append its id) or at a stop string it
        dropped. Its usage count tells: a dropped stop string costs tokens the text lacks."""
        usage = data.get("usage") if isinstance(data, dict) else None
        generated = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if isinstance(generated, int) and generated >= len(ids) + 2 and self.stop_strings:
            # A fence closing no python block (```output imitated, ```json): not the end.
            text += self.stop_strings[0]
            return [int(i) for i in await self._tokenize_async(client, text)], "stop"
        if self.eos_append_id is not None and not (ids and ids[-1] in self.eos_token_ids):
            ids = [*ids, int(self.eos_append_id)]
        return ids, "eos"

    async def _tokenize_async(self, client, text: str) -> list[int]:
        if not isinstance(self.tokenizer, RemoteTokenizer):
            return self.encode(text)
        return await self.tokenizer.encode_async(client, text)

    # --- chat -------------------------------------------------------------------------------

    def chat(self, messages: list[dict[str, str]], **sampling: Any) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": sampling.get("temperature", self.sampling.get("temperature", 0.7)),
            "top_p": sampling.get("top_p", self.sampling.get("top_p", 1.0)),
        }
        if sampling.get("max_new_tokens") or sampling.get("max_tokens"):
            body["max_tokens"] = int(sampling.get("max_new_tokens") or sampling["max_tokens"])
        if sampling.get("seed") is not None:
            body["seed"] = int(sampling["seed"])
        data = self.post_sync("/v1/chat/completions", body)
        try:
            return data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendError(f"no message in {str(data)[:200]}") from exc


class RemoteTokenizer:
    """The server's tokenizer over HTTP (vLLM / our serve: ``/tokenize``, ``/detokenize``;
    llama-cpp-python: ``/extras/tokenize``, ``/extras/detokenize``). One request per call, so
    step splitting of long trajectories is slow: prefer a local ``tokenizer`` path."""

    def __init__(self, backend: OpenAIBackend):
        self._b = backend
        self._llama = False
        self.eos_token_id = None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return _run(self._encode(None, text, add_special_tokens))

    async def encode_async(self, client, text: str) -> list[int]:
        return await self._encode(client, text, False)

    async def _encode(self, client, text: str, add_special_tokens: bool) -> list[int]:
        async def post(path, body):
            if client is not None:
                return await self._b._post(client, self._b.root + path, body)
            async with self._b._client() as c:
                return await self._b._post(c, self._b.root + path, body)

        if not self._llama:
            try:
                body = {"model": self._b.model, "prompt": text}
                body["add_special_tokens"] = add_special_tokens
                return list((await post("/tokenize", body))["tokens"])
            except _BadAnswer as exc:
                if exc.status != 404:
                    raise
                self._llama = True
        return list((await post("/extras/tokenize", {"input": text}))["tokens"])

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        if not self._llama:
            try:
                return self._b.post_sync(
                    "/detokenize", {"model": self._b.model, "tokens": list(ids)}
                )["prompt"]
            except _BadAnswer as exc:
                if exc.status != 404:
                    raise
                self._llama = True
        return self._b.post_sync("/extras/detokenize", {"tokens": list(ids)})["text"]

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=False, **kw):
        body = {
            "model": self._b.model,
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "add_special_tokens": False,
            **({"chat_template_kwargs": kw} if kw else {}),
        }
        ids = self._b.post_sync("/tokenize", body)["tokens"]
        return ids if tokenize else self.decode(ids)


def load_tokenizer(path: str) -> Any:
    """A Hugging Face tokenizer from a folder, or from a GGUF file (llama.cpp's format; needs
    the ``gguf`` package and takes ~20 s for a Qwen vocabulary, so a worker keeps it). A GGUF's
    tokenizer is corrected from its own metadata exactly as its trainable weights' tokenizer is
    (``serving.trainable``): the ids the engine stores and the ids SFT trains on come from one
    tokenizer, with one fingerprint."""
    from transformers import AutoTokenizer

    file = Path(path)
    if file.suffix == ".gguf":
        from ..serving.trainable import corrected_tokenizer, gguf_facts

        loaded = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
        return corrected_tokenizer(loaded, gguf_facts(file))
    return AutoTokenizer.from_pretrained(path)


def _eos_ids(tokenizer: Any) -> list[int]:
    out = []
    for name in ("eos_token_id",):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            out.append(value)
    convert = getattr(tokenizer, "convert_tokens_to_ids", None)
    if convert is not None:
        for tok in ("<|im_end|>", "<|endoftext|>"):
            tid = convert(tok)
            unk = getattr(tokenizer, "unk_token_id", None)
            if isinstance(tid, int) and tid != unk and tid not in out:
                out.append(tid)
    return out


TURN_END_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


def _turn_end_id(tokenizer: Any, eos_ids: Sequence[int]) -> int | None:
    convert = getattr(tokenizer, "convert_tokens_to_ids", None)
    if convert is not None:
        for token in TURN_END_TOKENS:
            try:
                tid = convert(token)
            except Exception:  # noqa: S112 - a tokenizer without this token
                continue
            if isinstance(tid, int) and tid in eos_ids:
                return tid
    return eos_ids[0] if eos_ids else None


def _run_reporting(go: Callable, on_tokens: OnTokens):
    """``_run(go(report))`` with ``on_tokens`` called on THIS thread, never inside the event
    loop: the loop runs on a helper thread and its reports come back through a queue. (The
    caller may write the preview to a database: Django refuses that from an async context.)
    Reports that queue up while one is handled are coalesced to the latest per request."""
    events: queue.SimpleQueue = queue.SimpleQueue()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(go(lambda k, ids: events.put((k, ids))))
        except BaseException as exc:
            box["error"] = exc
        finally:
            events.put(None)

    thread = threading.Thread(target=target, name="generate-stream", daemon=True)
    thread.start()
    done = False
    while not done:
        latest: dict[int, list[int]] = {}
        for item in [events.get(), *_drain(events)]:
            if item is None:
                done = True
            else:
                latest[item[0]] = item[1]
        for k, ids in latest.items():
            try:
                on_tokens(k, ids)
            except Exception:  # a preview must never break a generation
                log.exception("on_tokens failed")
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _drain(events: queue.SimpleQueue) -> list:
    out = []
    while True:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            return out


def _run(coro):
    """Run a coroutine to completion from sync code, also when called inside a running loop
    (e.g. from an async web handler): then it runs on a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
