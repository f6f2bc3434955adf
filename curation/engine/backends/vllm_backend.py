"""vLLM's offline engine (``vllm.LLM``) on a GPU worker: token prompts, prefix caching.

vLLM is an optional extra (``pip install .[gpu]``, vllm==0.31.0): it is imported only when this
backend is built, so importing this module without vLLM is fine. NOT exercised by the test suite
(no GPU and no vLLM here); written against vLLM 0.31's ``LLM.generate`` / ``SamplingParams``.

Spec extras: ``gpu_memory_utilization`` (0.85), ``tensor_parallel_size`` (1), ``dtype``
("auto"), ``max_num_seqs``, ``enforce_eager``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import FENCE_STOP, Backend, GenerationRequest, GenerationResult, Resume


class VLLMBackend(Backend):
    """``vllm.LLM`` with ``enable_prefix_caching=True``: every resume after a code block
    re-sends the whole prefix, which the prefix cache turns into a cheap lookup."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        try:
            from vllm import LLM
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise ImportError(
                "the vllm backend needs vLLM (pip install 'calm-studio[gpu]'), "
                "or use backend 'openai' against a vLLM server"
            ) from exc
        kwargs: dict[str, Any] = {
            "model": spec["model"],
            "tokenizer": spec.get("tokenizer") or None,
            "enable_prefix_caching": True,
            "gpu_memory_utilization": float(spec.get("gpu_memory_utilization", 0.85)),
            "tensor_parallel_size": int(spec.get("tensor_parallel_size", 1)),
            "dtype": spec.get("dtype", "auto"),
            "seed": int(self.sampling.get("seed") or 0),
        }
        if self.context_length:
            kwargs["max_model_len"] = int(self.context_length)
        for key in ("max_num_seqs", "enforce_eager"):
            if key in spec:
                kwargs[key] = spec[key]
        self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        if spec.get("chat_template"):
            self.tokenizer.chat_template = spec["chat_template"]
        eos = _generation_eos(spec["model"])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos:
            eos.append(self.tokenizer.eos_token_id)
        self.eos_token_ids = eos

    def _params(self, request: GenerationRequest, max_tokens: int, stop: list[str]):
        from vllm import SamplingParams

        seed = self.sampling_value(request.seed, "seed")
        return SamplingParams(
            temperature=float(self.sampling_value(request.temperature, "temperature", 1.0)),
            top_p=float(self.sampling_value(request.top_p, "top_p", 1.0)),
            max_tokens=max(1, int(max_tokens)),
            seed=None if seed is None else int(seed),
            stop=stop,
            include_stop_str_in_output=True,
            skip_special_tokens=False,
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        from vllm.inputs import TokensPrompt

        states = [Resume(r, self.decode, self.eos_token_ids) for r in requests]
        live = [s for s in states if s.remaining > 0]
        for s in states:
            if s.remaining <= 0:
                s.absorb([], "length")
        while live:
            prompts = [TokensPrompt(prompt_token_ids=s.prompt_ids) for s in live]
            params = [
                self._params(s.request, s.remaining, FENCE_STOP if s.request.stop_at_code else [])
                for s in live
            ]
            try:
                outputs = self.llm.generate(prompts, params, use_tqdm=False)
            except Exception as exc:  # a batch failure is each request's result
                for s in live:
                    s.absorb([], "error", f"{type(exc).__name__}: {exc}")
                break
            for s, out in zip(live, outputs, strict=True):
                o = out.outputs[0]
                if o.finish_reason == "length":
                    finish = "length"
                elif isinstance(o.stop_reason, str):
                    finish = "stop"
                else:
                    finish = "eos"  # None: EOS; an int: a stop token id
                s.absorb(list(o.token_ids), finish)
            live = [s for s in live if s.result is None]
        return [s.result for s in states if s.result is not None]

    def chat(self, messages: list[dict[str, str]], **sampling: Any) -> str:
        from vllm import SamplingParams

        params = SamplingParams(
            temperature=float(sampling.get("temperature", self.sampling.get("temperature", 0.7))),
            top_p=float(sampling.get("top_p", self.sampling.get("top_p", 1.0))),
            max_tokens=int(sampling.get("max_new_tokens") or 2048),
            seed=sampling.get("seed"),
        )
        out = self.llm.chat([messages], params, use_tqdm=False)
        return out[0].outputs[0].text

    def close(self) -> None:
        self.llm = None


def _generation_eos(model: str) -> list[int]:
    """EOS ids from the checkpoint's generation_config.json (Qwen lists <|im_end|> there)."""
    try:
        from transformers import GenerationConfig

        eos = GenerationConfig.from_pretrained(model).eos_token_id
    except Exception:  # no generation config: the tokenizer's EOS is used alone
        return []
    return [eos] if isinstance(eos, int) else list(eos or [])
