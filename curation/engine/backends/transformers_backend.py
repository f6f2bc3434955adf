"""A local checkpoint run with transformers (CPU or GPU), batched with left padding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .base import Backend, FenceStopper, GenerationRequest, GenerationResult, OnTokens


class NoStop:
    def feed(self, ids: Sequence[int]) -> bool:
        return False


class StopStrings:
    """Stops when the generated text contains one of ``stops`` (records which one)."""

    def __init__(self, decode, stops: Sequence[str]):
        from ..format import IncrementalDecoder

        self._dec = IncrementalDecoder(decode)
        self._stops = [s for s in stops if s]
        self._longest = max((len(s) for s in self._stops), default=0)
        self.text = ""
        self.matched: str | None = None

    def feed(self, ids: Sequence[int]) -> bool:
        if self.matched is None and self._stops:
            before = len(self.text)
            self.text += self._dec.push(ids)
            window = self.text[max(0, before - self._longest) :]
            for stop in self._stops:
                if stop in window:
                    self.matched = stop
                    break
        return self.matched is not None


@dataclass
class Row:
    """One sequence of a batched ``generate``: its prompt, budget and stop rule."""

    prompt_ids: list[int]
    max_new_tokens: int
    stopper: Any = field(default_factory=NoStop)
    ids: list[int] = field(default_factory=list)
    reason: str = ""  # "stop" (the stopper fired), "eos", "length"
    report: Any = None  # called with the ids generated so far, at every decoding step


class TransformersBackend(Backend):
    """``AutoModelForCausalLM`` from a local path. Spec extras: ``device`` ("cpu", "cuda", ...;
    default: cuda when available), ``dtype`` (default "auto"), ``max_batch_size`` (16)."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        path = spec["model"]
        self.tokenizer = AutoTokenizer.from_pretrained(spec.get("tokenizer") or path)
        if spec.get("chat_template"):
            self.tokenizer.chat_template = spec["chat_template"]
        device = spec.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=spec.get("dtype", "auto"))
        self.model.to(device).eval()
        self.device = device
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos:
            eos.append(self.tokenizer.eos_token_id)
        self.eos_token_ids = eos
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = eos[0] if eos else 0
        self.max_batch_size = int(spec.get("max_batch_size") or 16)
        if not self.context_length:
            self.context_length = getattr(self.model.config, "max_position_embeddings", None)

    # --- the interface ----------------------------------------------------------------------

    streams = True

    def generate(
        self, requests: Sequence[GenerationRequest], *, on_tokens: OnTokens | None = None
    ) -> list[GenerationResult]:
        rows = [
            Row(
                list(r.prompt_ids),
                r.max_new_tokens,
                FenceStopper(self.decode, r.fence) if r.stop_at_code else NoStop(),
                report=None if on_tokens is None else partial(on_tokens, k),
            )
            for k, r in enumerate(requests)
        ]
        # HF generate takes one sampling setting per call: group requests that share one. The
        # batch is seeded once (its first seed), so per-request seeds do not split a batch.
        groups: dict[tuple, list[int]] = {}
        seeds: dict[tuple, Any] = {}
        for i, r in enumerate(requests):
            key = (
                self.sampling_value(r.temperature, "temperature", 1.0),
                self.sampling_value(r.top_p, "top_p", 1.0),
            )
            groups.setdefault(key, []).append(i)
            seeds.setdefault(key, self.sampling_value(r.seed, "seed"))
        results: list[GenerationResult | None] = [None] * len(rows)
        for (temperature, top_p), idx in groups.items():
            seed = seeds[(temperature, top_p)]
            try:
                self.generate_rows(
                    [rows[i] for i in idx], temperature=temperature, top_p=top_p, seed=seed
                )
            except Exception as exc:  # an OOM or a bad id is this batch's result, not a crash
                for i in idx:
                    results[i] = GenerationResult([], "error", error=f"{type(exc).__name__}: {exc}")
                continue
            for i in idx:
                row = rows[i]
                reason = {"stop": "code"}.get(row.reason, row.reason)
                results[i] = GenerationResult(row.ids, reason, text=self.decode(row.ids))
        return [r for r in results if r is not None]

    def chat(self, messages: list[dict[str, str]], **sampling: Any) -> str:
        row = Row(self.chat_prompt_ids(messages), int(sampling.get("max_new_tokens") or 1024))
        self.generate_rows(
            [row],
            temperature=sampling.get("temperature", self.sampling.get("temperature", 0.7)),
            top_p=sampling.get("top_p", self.sampling.get("top_p", 1.0)),
            seed=sampling.get("seed", self.sampling.get("seed")),
        )
        return self.tokenizer.decode(row.ids, skip_special_tokens=True)

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()

    # --- batched generation -----------------------------------------------------------------

    def generate_rows(
        self,
        rows: list[Row],
        *,
        temperature: float | None,
        top_p: float | None,
        seed: int | None,
    ) -> None:
        """Fill each row's ``ids`` and ``reason``, at most ``max_batch_size`` rows at a time."""
        for start in range(0, len(rows), self.max_batch_size):
            self._generate_batch(
                rows[start : start + self.max_batch_size],
                temperature=temperature,
                top_p=top_p,
                seed=seed,
            )

    def _generate_batch(self, rows: list[Row], *, temperature, top_p, seed) -> None:
        torch = self._torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        live = [r for r in rows if r.max_new_tokens > 0]
        for r in rows:
            if r.max_new_tokens <= 0:
                r.ids, r.reason = [], "length"
        if not live:
            return
        width = max(len(r.prompt_ids) for r in live)
        input_ids = torch.full((len(live), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(live), width), dtype=torch.long)
        for i, r in enumerate(live):  # left padding: every prompt ends at column `width`
            input_ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids) :] = 1
        stopped_at: list[int | None] = [None] * len(live)
        eos = set(self.eos_token_ids)

        class _PerRow(StoppingCriteria):
            # Each row has its own stop rule and budget; HF keeps generating the other rows.
            def __call__(self, ids, scores, **kwargs):
                done = []
                for i, r in enumerate(live):
                    if stopped_at[i] is None:
                        new = ids[i, width:].tolist()
                        seen = getattr(r, "_seen", 0)
                        fresh = new[seen:]
                        r._seen = len(new)  # type: ignore[attr-defined]
                        hit_eos = any(t in eos for t in fresh)
                        if not hit_eos and (r.stopper.feed(fresh) or len(new) >= r.max_new_tokens):
                            stopped_at[i] = len(new)
                        if r.report is not None and fresh:
                            r.report(new)
                    done.append(stopped_at[i] is not None)
                return torch.tensor(done, dtype=torch.bool, device=ids.device)

        do_sample = bool(temperature) and temperature > 0
        kwargs: dict[str, Any] = {"do_sample": do_sample}
        if do_sample:
            kwargs.update(temperature=float(temperature), top_p=float(top_p or 1.0))
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if seed is not None:
            torch.manual_seed(int(seed))
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=max(r.max_new_tokens for r in live),
                stopping_criteria=StoppingCriteriaList([_PerRow()]),
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_token_ids or None,
                **kwargs,
            )
        for i, r in enumerate(live):
            new = out[i, width:].tolist()
            first_eos = next((k for k, t in enumerate(new) if t in eos), None)
            limit = min(r.max_new_tokens, len(new))
            if (
                first_eos is not None
                and first_eos < limit
                and (stopped_at[i] is None or first_eos < stopped_at[i])
            ):
                r.ids, r.reason = new[: first_eos + 1], "eos"
            elif stopped_at[i] is not None and r.stopper.feed([]):
                r.ids, r.reason = new[: stopped_at[i]], "stop"
            else:
                r.ids, r.reason = new[:limit], "length"
