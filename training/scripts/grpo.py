"""GRPO in the code-executing environment: TRL's GRPOTrainer with a ``rollout_func`` that runs
the project's trajectory engine (generate until a ```python block closes, run it in the solver
sandbox, append its output, go on), so code runs inside every rollout.

```bash
# CoRT's RL recipe (8 rollouts, lr 1e-6, beta 0.001, T 0.6, top_p 0.95, 16k tokens)
python -m training.scripts.grpo --config training/scripts/configs/grpo_cort.yaml \
    --model_name_or_path var/runs/sft-1 --train_files problems/train.jsonl \
    --output_dir var/runs/grpo-1 --metrics_file var/runs/grpo-1/metrics.jsonl

# RLCR's calibration reward instead of the plain binary one, plus the SEM-like call penalty
python -m training.scripts.grpo --config training/scripts/configs/grpo_cort.yaml \
    --model_name_or_path var/runs/sft-1 --train_files train.jsonl --output_dir var/runs/grpo-2 \
    --reward_funcs calibration all_failed_penalty code_call_penalty --code_call_budget 4

# generation with vLLM in colocate mode (vllm==0.31.0 on the GPU box; NOT exercised by tests)
python -m training.scripts.grpo --config training/scripts/configs/grpo_cort.yaml --use_vllm true \
    --vllm_mode colocate --model_name_or_path var/runs/sft-1 --train_files train.jsonl \
    --output_dir var/runs/grpo-3
```

The rollout (``EngineRollout``):

- receives the prompts of the generation batch, already repeated ``num_generations`` times by
  TRL's sampler (the ``prompt`` column is the problem's question; the engine applies the chat
  template with its system prompt), and returns one completion per prompt, in order;
- generates with the trainer's current model through an engine ``transformers`` backend wrapped
  around it (or the colocated vLLM engine with ``--use_vllm``), with TRL's ``temperature`` /
  ``top_p``; the token budget is the engine's ``max_new_tokens`` = ``max_completion_length``
  (interpreter tokens included), at most ``max_code_calls`` runs of ``code_timeout_s`` each;
- returns ``prompt_ids`` (the chat prompt plus the forced ``think_prefix`` tokens, which the
  policy did not sample), ``completion_ids``, ``logprobs`` = None (TRL recomputes what it needs
  with the current model), ``env_mask`` (1 on the model's tokens, 0 on interpreter output, which
  TRL multiplies into the loss), and ``final_answer``, ``code_calls``, ``failed_code_calls``,
  ``finish_reason`` for the reward functions (``training/scripts/rewards.py``).

SIGTERM, the metrics file and ``calm_config.yaml`` work as in ``training.scripts.sft``.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .data import load_problems
from .rewards import REWARDS, build_reward_funcs, with_confidence_request
from .runtime import CancelToken, MetricsWriter, library_versions, resolved_config, run_training

log = logging.getLogger(__name__)


@dataclass
class GRPOScriptArguments:
    """Problems, environment and rewards of a GRPO run (GRPOConfig / ModelConfig hold the rest)."""

    train_files: list[str] = field(
        default_factory=list, metadata={"help": "Problems JSONL files (id, question, answer, ...)."}
    )
    max_problems: int | None = field(
        default=None, metadata={"help": "Use at most this many problems per file."}
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "System prompt (default: the engine's CoRT-style one)."}
    )
    think_prefix: str = field(
        default="auto",
        metadata={
            "help": "Forced start of the assistant turn; auto: <think> unless the chat "
            "template opens it (the engine's think_prefix_for, as in curation)."
        },
    )
    max_code_calls: int = field(default=15, metadata={"help": "Code runs per rollout (CoRT)."})
    credit_sandbox_answer: bool = field(
        default=False,
        metadata={
            "help": "Reward the sandbox's last optimum when nothing was boxed (off: only "
            "stated answers are rewarded)."
        },
    )
    code_timeout_s: float = field(default=5.0, metadata={"help": "Per run (CoRT uses 5 s in RL)."})
    notice_calls_left: int = field(
        default=0, metadata={"help": "Also warn when this few code calls remain."}
    )
    code_workers: int = field(default=2, metadata={"help": "Code blocks run in parallel."})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["correctness", "all_failed_penalty"],
        metadata={"help": f"Rewards, summed with --reward_weights: {', '.join(REWARDS)}."},
    )
    answer_rule: str = field(
        default="relative",
        metadata={"help": "orlm | sirl | optmath | storm-paper | cort-math (or relative)"},
    )
    answer_tolerance: float = field(default=1e-6, metadata={"help": "Tolerance of the rule."})
    failed_penalty: float = field(default=0.1, metadata={"help": "CoRT all-failed penalty."})
    code_call_budget: int = field(default=4, metadata={"help": "Free code calls (SEM-like)."})
    code_call_penalty: float = field(default=0.05, metadata={"help": "Per call past the budget."})
    rollouts_file: str | None = field(
        default=None,
        metadata={
            "help": "Append every rollout here (JSONL: step, completion_ids, env_mask, tags, "
            "code calls, answer, reward inputs), to inspect what the policy was trained on."
        },
    )
    metrics_file: str | None = field(
        default=None, metadata={"help": "Append JSON events here (default: $CALM_METRICS_FILE)."}
    )


def make_parser():
    from trl import GRPOConfig, ModelConfig, TrlParser

    return TrlParser(
        (GRPOScriptArguments, GRPOConfig, ModelConfig), prog="python -m training.scripts.grpo"
    )


def parse_args(argv: Sequence[str] | None = None):
    """``(script_args, training_args, model_args)`` from ``--config`` YAML + command line."""
    return make_parser().parse_args_and_config(list(argv) if argv is not None else None)


# --- generation backends around the trainer's model -------------------------------------------


def trainer_model_backend(model, tokenizer, *, max_batch_size: int = 64):
    """An engine ``transformers`` backend that generates with an already-loaded model (the
    trainer's, unwrapped) instead of loading one from a path."""
    import torch

    from curation.engine.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend.__new__(TransformersBackend)
    # Backend.__init__ sets name/spec/sampling; TransformersBackend.__init__ would load a model.
    super(TransformersBackend, backend).__init__({"name": "trainer-model"})
    backend._torch = torch
    backend.tokenizer = tokenizer
    backend.model = model
    backend.device = str(next(model.parameters()).device)
    eos = model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.append(tokenizer.eos_token_id)
    backend.eos_token_ids = eos
    backend.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    backend.max_batch_size = max_batch_size
    backend.context_length = getattr(model.config, "max_position_embeddings", None)
    return backend


def colocated_vllm_backend(trainer):
    """An engine ``vllm`` backend on the ``vllm.LLM`` TRL runs in colocate mode (TRL syncs the
    weights into it before each rollout_func call). Untested here: no vLLM on this machine."""
    from curation.engine.backends.base import Backend
    from curation.engine.backends.vllm_backend import VLLMBackend

    llm = getattr(getattr(trainer, "vllm_generation", None), "llm", None)
    if llm is None:
        raise RuntimeError("rollouts with vLLM need --vllm_mode colocate (no local vllm.LLM found)")
    backend = VLLMBackend.__new__(VLLMBackend)
    Backend.__init__(backend, {"name": "trainer-vllm"})
    backend.llm = llm
    backend.tokenizer = trainer.processing_class
    eos = trainer.model.generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    if backend.tokenizer.eos_token_id not in eos:
        eos.append(backend.tokenizer.eos_token_id)
    backend.eos_token_ids = eos
    return backend


# --- the rollout ------------------------------------------------------------------------------


class EngineRollout:
    """TRL ``rollout_func``: ``(prompts, trainer) -> dict``. See the module docstring."""

    def __init__(self, script_args: GRPOScriptArguments, *, run_code=None):
        self.args = script_args
        self.run_code = run_code  # None: the engine's solver-sandbox runner

    def system_prompt(self) -> str:
        """The system prompt; with RLCR's calibration reward it asks for a confidence."""
        from curation.engine import DEFAULT_SYSTEM_PROMPT

        prompt = (
            DEFAULT_SYSTEM_PROMPT if self.args.system_prompt is None else self.args.system_prompt
        )
        if "calibration" in (self.args.reward_funcs or []):
            prompt = with_confidence_request(prompt)
        return prompt

    def rollout_config(self, trainer):
        from curation.engine import RolloutConfig

        targs = trainer.args
        return RolloutConfig(
            max_code_calls=self.args.max_code_calls,
            max_new_tokens=int(targs.max_completion_length),
            code_timeout_s=self.args.code_timeout_s,
            notice_calls_left=self.args.notice_calls_left,
            temperature=float(targs.temperature),
            top_p=float(targs.top_p),
            seed=None,
            think_prefix=self.args.think_prefix,
            credit_sandbox_answer=self.args.credit_sandbox_answer,
            system_prompt=self.system_prompt(),
            chat_template_kwargs=dict(targs.chat_template_kwargs or {}),
            code_workers=self.args.code_workers,
        )

    @contextlib.contextmanager
    def backend(self, trainer):
        if trainer.use_vllm:
            yield colocated_vllm_backend(trainer)
            return
        from trl.models import unwrap_model_for_generation

        with unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as unwrapped:
            yield trainer_model_backend(
                unwrapped,
                trainer.processing_class,
                max_batch_size=max(1, trainer.args.per_device_train_batch_size),
            )

    def __call__(self, prompts: list[Any], trainer) -> dict[str, Any]:
        from curation.engine import rollout_many
        from curation.engine.branching import forced_prefix_length

        problems = [_question(p) for p in prompts]
        config = self.rollout_config(trainer)
        with self.backend(trainer) as backend:
            rollouts = rollout_many(backend, problems, config, run_code=self.run_code)
            # The forced prefix is tagged PROMPT by the engine (think_prefix_for's rule).
            forced = max((forced_prefix_length(r.completion) for r in rollouts), default=0)
            eos = backend.eos_token_ids[0] if backend.eos_token_ids else None
        out = rollout_columns(rollouts, forced=forced, eos=eos)
        _log_rollout_metrics(trainer, out)
        if self.args.rollouts_file and trainer.accelerator.is_main_process:
            self._record(trainer, problems, rollouts, out, forced)
        return {**out, "logprobs": None}

    def _record(self, trainer, problems, rollouts, out, forced: int) -> None:
        """One JSON line per rollout: what the loss saw (``completion_ids``, ``env_mask``)
        beside the engine's own tags (0 prompt, 1 model, 2 interpreter, 3 hint)."""
        import json

        step = trainer.state.global_step
        with open(self.args.rollouts_file, "a", encoding="utf-8") as fh:
            for i, r in enumerate(rollouts):
                k = min(forced, len(r.completion))
                record = {
                    "step": step,
                    "question": problems[i][:300],
                    "completion_ids": out["completion_ids"][i],
                    "env_mask": out["env_mask"][i],
                    "tags": [int(t) for t in r.completion.tags[k:]] or [0],
                    "code_calls": out["code_calls"][i],
                    "failed_code_calls": out["failed_code_calls"][i],
                    "final_answer": out["final_answer"][i],
                    "finish_reason": out["finish_reason"][i],
                }
                fh.write(json.dumps(record) + "\n")


def rollout_columns(rollouts, *, forced: int, eos: int | None) -> dict[str, list[Any]]:
    """What the rollout returns to TRL per completion: ``prompt_ids`` (with the forced think
    prefix, which was not sampled), ``completion_ids`` and ``env_mask`` (0 on interpreter
    output), and, for the reward functions, the engine's own decision of the final answer
    (``final_answer``, None when nothing was stated: the rewards never re-read the text),
    ``code_calls``, ``failed_code_calls`` and ``finish_reason``."""
    from curation.engine import Tag

    out: dict[str, list[Any]] = {
        "prompt_ids": [],
        "completion_ids": [],
        "env_mask": [],
        "final_answer": [],
        "code_calls": [],
        "failed_code_calls": [],
        "finish_reason": [],
        "interpreter_tokens": [],
    }
    for r in rollouts:
        # The forced think prefix was not sampled: it is context, so it joins the prompt.
        k = min(forced, len(r.completion))
        completion = r.completion[k:]
        ids, mask = list(completion.ids), completion.mask(Tag.MODEL, Tag.HINT)
        if not ids:  # TRL needs one token per completion (an error or a spent budget)
            ids, mask = [eos if eos is not None else 0], [0]
        if r.infrastructure_failed:  # the sandbox failed, not the policy: nothing to learn
            mask = [0] * len(ids)
        out["prompt_ids"].append(list(r.prompt_ids) + r.completion.ids[:k])
        out["completion_ids"].append(ids)
        out["env_mask"].append(mask)
        out["final_answer"].append(r.final_answer.to_dict() if r.final_answer else None)
        out["code_calls"].append(r.code_calls)
        out["failed_code_calls"].append(r.failed_code_calls)
        out["finish_reason"].append(r.finish_reason)
        out["interpreter_tokens"].append(completion.count(Tag.INTERPRETER))
    return out


def _question(prompt: Any) -> str:
    """The problem text of a prompt: a string, or the last user message of a conversation."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        if users:
            content = users[-1].get("content", "")
            if isinstance(content, list):
                return "".join(c.get("text", "") for c in content if isinstance(c, dict))
            return str(content)
    return str(prompt)


def _log_rollout_metrics(trainer, out: dict[str, list[Any]]) -> None:
    """Per-batch means into the trainer's metrics (logged as ``rollout/*``)."""
    metrics = getattr(trainer, "_metrics", None)
    if metrics is None or not out["code_calls"]:
        return
    mode = "train" if trainer.model.training else "eval"
    n = len(out["code_calls"])
    metrics[mode]["rollout/code_calls"].append(sum(out["code_calls"]) / n)
    metrics[mode]["rollout/failed_code_calls"].append(sum(out["failed_code_calls"]) / n)
    metrics[mode]["rollout/interpreter_tokens"].append(sum(out["interpreter_tokens"]) / n)
    answered = sum(1 for a in out["final_answer"] if a is not None)
    metrics[mode]["rollout/answered"].append(answered / n)


# --- the trainer ------------------------------------------------------------------------------


def build_trainer(
    script_args: GRPOScriptArguments,
    training_args,
    model_args,
    *,
    metrics: MetricsWriter | None = None,
    cancel: CancelToken | None = None,
    run_code=None,
):
    """The configured GRPOTrainer (not yet trained), with the engine rollout and the CALM
    callback attached."""
    import os

    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOTrainer, get_peft_config, get_quantization_config

    from .callbacks import CalmCallback

    if not script_args.train_files:
        raise ValueError("--train_files is required (one or more problems JSONL files)")
    from curation.engine import sandbox_check

    # A sandbox that cannot run code stops the run here, with its reason, before any model
    # is loaded (every rollout would otherwise stop on it and train nothing).
    sandbox_check(run_code, timeout_s=script_args.code_timeout_s + 30)
    problems = load_problems(script_args.train_files, limit=script_args.max_problems)
    dataset = Dataset.from_list(
        [
            {
                "prompt": p["question"],
                "id": p["id"],
                "benchmark": p["benchmark"],
                "answer": p["answer"],
                "answer_status": p["answer_status"],
            }
            for p in problems
        ]
    )
    reward_funcs = build_reward_funcs(
        script_args.reward_funcs,
        rule=script_args.answer_rule,
        tolerance=script_args.answer_tolerance,
        failed_penalty=script_args.failed_penalty,
        code_call_budget=script_args.code_call_budget,
        code_call_penalty_per_call=script_args.code_call_penalty,
    )
    if training_args.use_vllm:
        if training_args.vllm_mode != "colocate":
            raise ValueError("engine rollouts drive a local vllm.LLM: use --vllm_mode colocate")
        # The engine's vLLM backend returns no sampling logprobs: TRL's vLLM importance-sampling
        # correction needs them, so it is off (old logprobs come from the training model).
        training_args.vllm_importance_sampling_correction = False

    model_init_kwargs: dict[str, Any] = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    if training_args.model_init_kwargs:
        model_init_kwargs.update(training_args.model_init_kwargs)
    training_args.model_init_kwargs = model_init_kwargs
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )

    config = resolved_config(script_args, training_args, model_args)
    callback = CalmCallback(
        metrics or MetricsWriter(None), cancel, config, kind="grpo", meta=library_versions()
    )
    # rollout_func is experimental in TRL 1.16 and says so on every start; we know.
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    trainer = GRPOTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
        rollout_func=EngineRollout(script_args, run_code=run_code),
        callbacks=[callback],
    )
    trainer.calm_callback = callback
    return trainer


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args(argv)
    return run_training("grpo", build_trainer, args, metrics_file=args[0].metrics_file)


if __name__ == "__main__":
    sys.exit(main())
