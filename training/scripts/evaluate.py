"""Evaluate a Reasoner on problems JSONL files: k samples per problem through the trajectory
engine (code runs in the solver sandbox), pass@1 per benchmark and the macro average, side by
side with the paper's numbers.

```bash
# a local checkpoint (engine transformers backend; cuda when available)
python -m training.scripts.evaluate --model var/runs/grpo-1 \
    --problems /work/shared/benchmarks/nl4opt.jsonl /work/shared/benchmarks/industryor.jsonl \
    --k 4 --temperature 0.6 --output_dir var/evals/grpo-1

# an OpenAI-compatible server (vLLM, llama.cpp,
# `python -m curation.engine.serving.checkpoint_server`)
python -m training.scripts.evaluate --base_url http://127.0.0.1:8000/v1 --model qwen3-4b \
    --tokenizer /models/Qwen3-4B-Thinking-2507 --problems nl4opt.jsonl --output_dir var/evals/q

# the same, from a YAML file with command-line overrides
python -m training.scripts.evaluate --config eval.yaml --k 8
```

Writes into ``output_dir``: ``results.json`` (settings; ``record``: the answer rule and its
tolerance, k and mode, sampling, prompt, endpoint and checkpoint, the problem set's sha256 and
the answer versions; per benchmark ``pass_at_1`` as a fraction, ``any_of_k``, ``score`` (the
one the mode names), outcome counts (correct / wrong / no_answer / endpoint_error), the Brier
score when confidences were asked for, mean code calls and response tokens, the paper's
numbers, and per problem its samples: final answer, outcome, confidence, code calls, failed
calls, response tokens, finish reason; then ``macro_pass_at_1``, ``macro_score``),
``trajectories.jsonl`` (each rollout's ``to_dict()`` with ``problem_id``, ``benchmark``,
``sample``, ``correct``) and ``calm_config.yaml``. pass@1 for a problem is the
mean correctness of its k samples; a benchmark's is the mean over its problems.

Progress goes to the metrics file as ``step`` events (``step`` = samples done, ``max_steps`` =
samples in all), one ``eval`` event with the summary, and ``done``. SIGTERM stops after the
current batch and writes what was done (``"status": "cancelled"``), exit code 0.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import load_problems
from .eval_scoring import (
    MODES,
    OUTCOMES,
    PAPER_MACRO,
    PAPER_RESULTS,
    benchmark_summary,
    endpoint_record,
    evaluation_record,
    format_table,
    judge_sample,
    paper_numbers,
    rule_record,
)
from .rewards import stated_confidence

__all__ = ["PAPER_MACRO", "PAPER_RESULTS", "evaluate", "format_table", "main", "paper_numbers"]
from .runtime import CancelToken, MetricsWriter, library_versions, resolved_config, save_config

log = logging.getLogger(__name__)


@dataclass
class EvaluateArguments:
    """What to evaluate, on what, and how."""

    model: str = field(
        default="", metadata={"help": "Local checkpoint path, or served model name."}
    )
    problems: list[str] = field(default_factory=list, metadata={"help": "Problems JSONL files."})
    output_dir: str = field(default="", metadata={"help": "Where results.json etc. go."})
    base_url: str | None = field(
        default=None, metadata={"help": "OpenAI-compatible base URL (then: the openai backend)."}
    )
    backend: str | None = field(
        default=None, metadata={"help": "transformers | openai | vllm (default: from base_url)."}
    )
    api_key_env: str | None = field(
        default=None, metadata={"help": "NAME of the env variable holding the API key."}
    )
    tokenizer: str | None = field(default=None, metadata={"help": "Local tokenizer path."})
    endpoint_spec: str | None = field(
        default=None,
        metadata={
            "help": "A JSON file with a whole engine endpoint spec (what CALM Studio's model "
            "endpoints hold: backend, model, base_url, tokenizer, chat rules, ...); replaces "
            "--backend/--base_url/--tokenizer. --device, --dtype and --batch_size still apply."
        },
    )
    device: str | None = field(default=None, metadata={"help": "transformers: cpu | cuda | ..."})
    dtype: str = field(default="auto", metadata={"help": "transformers: model dtype."})
    concurrency: int = field(default=8, metadata={"help": "openai: requests in flight."})
    k: int = field(default=1, metadata={"help": "Samples per problem."})
    temperature: float = field(default=0.6, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling."})
    seed: int | None = field(default=None, metadata={"help": "Sampling seed."})
    max_new_tokens: int = field(default=16384, metadata={"help": "Budget per completion."})
    max_code_calls: int = field(default=15, metadata={"help": "Code runs per trajectory."})
    credit_sandbox_answer: bool = field(
        default=False,
        metadata={
            "help": "Credit the sandbox's last optimum when nothing was boxed (off: "
            "only stated answers count)."
        },
    )
    code_timeout_s: float = field(default=30.0, metadata={"help": "Per code run (CoRT: 30 s)."})
    system_prompt: str | None = field(
        default=None, metadata={"help": "Default: the prompts file's, else the engine's."}
    )
    prompts_file: str | None = field(
        default=None,
        metadata={
            "help": "A prompt record (JSON: system_prompt, worked_example, think_prefix, "
            "chat_template_kwargs): the prompts the evaluated model was trained on. CALM Studio "
            "writes the evaluated endpoint's beside the run; --system_prompt and a think_prefix "
            "other than auto override it."
        },
    )
    think_prefix: str = field(
        default="auto",
        metadata={"help": "Forced turn start; auto: the prompts file's, else <think> unless the "
                  "template opens it."},
    )  # fmt: skip
    rule: str = field(
        default="sirl",
        metadata={"help": "Answer rule preset: orlm | sirl | optmath | storm-paper | cort-math."},
    )
    tolerance: float | None = field(
        default=None, metadata={"help": "ε, for rules where it is a setting (storm-paper)."}
    )
    mode: str = field(
        default="mean",
        metadata={"help": "The headline figure: mean (pass@1, mean over k) | any (any of k)."},
    )
    ask_confidence: bool = field(
        default=False,
        metadata={"help": "RLCR: ask for <confidence>q</confidence> after the boxed answer."},
    )
    max_problems: int | None = field(default=None, metadata={"help": "At most N per file."})
    batch_size: int = field(default=16, metadata={"help": "Samples per engine call."})
    metrics_file: str | None = field(
        default=None, metadata={"help": "Append JSON events here (default: $CALM_METRICS_FILE)."}
    )


def make_parser():
    from trl import TrlParser

    return TrlParser((EvaluateArguments,), prog="python -m training.scripts.evaluate")


def backend_spec(args: EvaluateArguments) -> dict[str, Any]:
    """The engine endpoint spec for ``load_backend``."""
    if args.endpoint_spec:
        spec = json.loads(Path(args.endpoint_spec).read_text(encoding="utf-8"))
        if not isinstance(spec, dict) or "backend" not in spec:
            raise ValueError(f"{args.endpoint_spec}: not an endpoint spec (no 'backend')")
        if spec["backend"] in ("transformers", "vllm"):
            if args.device:
                spec["device"] = args.device
            if args.dtype != "auto":
                spec["dtype"] = args.dtype
            spec["max_batch_size"] = args.batch_size
        return spec
    kind = args.backend or ("openai" if args.base_url else "transformers")
    spec: dict[str, Any] = {"backend": kind, "model": args.model}
    if args.tokenizer:
        spec["tokenizer"] = args.tokenizer
    if kind == "openai":
        if not args.base_url:
            raise ValueError("the openai backend needs --base_url")
        spec.update(base_url=args.base_url, concurrency=args.concurrency)
        if args.api_key_env:
            spec["api_key_env"] = args.api_key_env
    elif kind in ("transformers", "vllm"):
        spec["dtype"] = args.dtype
        if args.device:
            spec["device"] = args.device
        spec["max_batch_size"] = args.batch_size
    return spec


def prompt_values(args: EvaluateArguments) -> dict[str, Any]:
    """The prompts file's rollout values, under the explicit arguments."""
    from curation.engine.fingerprint import load_prompt_record, prompt_settings

    values = prompt_settings(load_prompt_record(args.prompts_file))
    if args.system_prompt is not None:
        values["system_prompt"] = args.system_prompt
    if args.think_prefix != "auto":
        values["think_prefix"] = args.think_prefix
    return values


def system_prompt(args: EvaluateArguments) -> str:
    """The system prompt the evaluation sends (with the RLCR confidence request if asked)."""
    from curation.engine import DEFAULT_SYSTEM_PROMPT

    from .rewards import with_confidence_request

    prompt = prompt_values(args).get("system_prompt", DEFAULT_SYSTEM_PROMPT)
    return with_confidence_request(prompt) if args.ask_confidence else prompt


def _rollout_config(args: EvaluateArguments):
    from curation.engine import RolloutConfig

    values = prompt_values(args)
    return RolloutConfig(
        worked_example=values.get("worked_example"),
        chat_template_kwargs=values.get("chat_template_kwargs") or {},
        max_code_calls=args.max_code_calls,
        max_new_tokens=args.max_new_tokens,
        code_timeout_s=args.code_timeout_s,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        think_prefix=values.get("think_prefix", args.think_prefix),
        credit_sandbox_answer=args.credit_sandbox_answer,
        system_prompt=system_prompt(args),
    )


def evaluate(
    args: EvaluateArguments,
    *,
    backend=None,
    metrics: MetricsWriter | None = None,
    cancel: CancelToken | None = None,
    run_code=None,
) -> dict[str, Any]:
    """Run the evaluation and write its files; returns the results dict. ``backend`` (an
    engine backend) overrides the one built from ``args``."""
    from curation.engine import load_backend, rollout_many, sandbox_check

    if not args.problems or not args.output_dir:
        raise ValueError("--problems and --output_dir are required")
    if args.k < 1:
        raise ValueError("--k must be at least 1")
    if args.mode not in MODES:
        raise ValueError(f"--mode must be one of {', '.join(MODES)}, got {args.mode!r}")
    rule_record(args.rule, args.tolerance)  # an unknown rule fails before any sampling
    # A sandbox that cannot run code fails the evaluation here, with its reason, instead of
    # scoring every sample that ran code as the model's failure.
    sandbox_check(run_code)
    metrics = metrics or MetricsWriter(None)
    cancel = cancel or CancelToken()
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(out_dir, resolved_config(args), kind="evaluate", **library_versions())
    problems = load_problems(args.problems, limit=args.max_problems)
    config = _rollout_config(args)
    own_backend = backend is None
    metrics.emit("phase", phase="loading", model=args.model or args.base_url)
    backend = backend or load_backend(backend_spec(args))

    jobs = [(p, s) for p in problems for s in range(args.k)]
    metrics.emit("phase", phase="generating", k=args.k, problems=len(problems), samples=len(jobs))
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    started = time.time()
    done = 0
    status = "completed"
    trajectories = (out_dir / "trajectories.jsonl").open("w", encoding="utf-8")
    try:
        for start in range(0, len(jobs), max(1, args.batch_size)):
            if cancel.cancelled:
                status = "cancelled"
                break
            batch = jobs[start : start + args.batch_size]
            rollouts = rollout_many(
                backend, [p["question"] for p, _ in batch], config, run_code=run_code
            )
            for (problem, sample), r in zip(batch, rollouts, strict=True):
                final = r.final_answer.to_dict() if r.final_answer else None
                outcome = judge_sample(
                    final, reference=problem["answer"], answer_status=problem["answer_status"],
                    rule=args.rule, tolerance=args.tolerance,
                    endpoint_error=r.finish_reason == "error",
                    infrastructure=r.infrastructure_failed,
                )  # fmt: skip
                correct = outcome == "correct"
                samples.setdefault((problem["benchmark"], problem["id"]), []).append(
                    {
                        "sample": sample,
                        "final_answer": final,
                        "outcome": outcome,
                        "confidence": stated_confidence(r.text) if args.ask_confidence else None,
                        "correct": correct,
                        "code_calls": r.code_calls,
                        "failed_code_calls": r.failed_code_calls,
                        # Response length as curation counts it (model + hint tokens);
                        # the whole completion, interpreter and forced prefix included, apart.
                        "response_tokens": r.response_tokens,
                        "completion_tokens": len(r.completion),
                        "finish_reason": r.finish_reason,
                        "error": r.error,
                    }
                )
                record = {
                    "problem_id": problem["id"],
                    "benchmark": problem["benchmark"],
                    "sample": sample,
                    "correct": bool(correct),
                    **r.to_dict(),
                }
                trajectories.write(json.dumps(record, ensure_ascii=False) + "\n")
            trajectories.flush()
            done += len(batch)
            running = summarize(problems, samples, args)
            metrics.emit(
                "step",
                step=done,
                max_steps=len(jobs),
                epoch=None,
                pass_at_1=running["macro_pass_at_1"],
                code_calls=_mean(s["code_calls"] for v in samples.values() for s in v),
                completion_length=_mean(s["response_tokens"] for v in samples.values() for s in v),
            )
    finally:
        trajectories.close()
        if own_backend:
            backend.close()
    metrics.emit("phase", phase="scoring", samples=done)
    results = summarize(problems, samples, args)
    results["record"].update(
        endpoint=endpoint_record(backend_spec_or_none(args)),
        checkpoint=args.model,
    )
    results.update(
        status=status,
        samples_done=done,
        samples_total=len(jobs),
        wall_s=round(time.time() - started, 3),
        settings={k: v for k, v in resolved_config(args).items() if k != "metrics_file"},
    )
    (out_dir / "results.json").write_text(
        json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    metrics.emit(
        "eval",
        step=done,
        max_steps=len(jobs),
        metrics={
            "macro_pass_at_1": results["macro_pass_at_1"],
            "macro_score": results["macro_score"],
            **{f"{b}/pass_at_1": v["pass_at_1"] for b, v in results["benchmarks"].items()},
        },
    )
    return results


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def _mean_of(benchmarks: dict[str, dict[str, Any]], key: str) -> float | None:
    return _mean(v[key] for v in benchmarks.values() if v[key] is not None)


def backend_spec_or_none(args: EvaluateArguments) -> dict[str, Any] | None:
    try:
        return backend_spec(args)
    except (ValueError, OSError):
        return None


def record(args: EvaluateArguments, problems: list[dict[str, Any]]) -> dict[str, Any]:
    """What an evaluation was (``eval_scoring.evaluation_record``) from its arguments."""
    sampling = {
        k: getattr(args, k)
        for k in ("temperature", "top_p", "seed", "max_new_tokens", "max_code_calls",
                  "code_timeout_s")
    }  # fmt: skip
    return evaluation_record(
        rule=args.rule, tolerance=args.tolerance, k=args.k, mode=args.mode, sampling=sampling,
        system_prompt=system_prompt(args),
        think_prefix=prompt_values(args).get("think_prefix", args.think_prefix),
        asks_confidence=args.ask_confidence, problems=problems,
    )  # fmt: skip


def summarize(
    problems: list[dict[str, Any]],
    samples: dict[tuple[str, str], list[dict[str, Any]]],
    args: EvaluateArguments,
) -> dict[str, Any]:
    """Per-benchmark figures (``eval_scoring.benchmark_summary``: pass@1 as the mean over
    problems of the mean over samples, any-of-k, outcome counts, Brier) and the macro means,
    over the problems that have at least one sample."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for problem in problems:
        got = samples.get((problem["benchmark"], problem["id"]))
        if not got:
            continue
        grouped.setdefault(problem["benchmark"], []).append(
            {
                "id": problem["id"],
                "answer": problem["answer"],
                "answer_status": problem["answer_status"],
                "answer_version": problem.get("answer_version"),
                "samples": got,
            }
        )
    benchmarks: dict[str, dict[str, Any]] = {}
    for name, rows in grouped.items():
        benchmarks[name] = {
            **benchmark_summary(rows, mode=args.mode),
            "paper": paper_numbers(name),
            "problems": rows,
        }
    rec = record(args, problems)
    from curation.engine.rollout import prompts_of

    # Every prompt the evaluation sent (worked example included), with its id: a dataset's
    # card names the same id when the model was trained on these prompts.
    rec["prompts"] = prompts_of(_rollout_config(args))
    return {
        "model": args.model,
        "k": args.k,
        "temperature": args.temperature,
        "rule": rec["rule"],
        "tolerance": rec["tolerance"],
        "mode": args.mode,
        "record": rec,
        "benchmarks": benchmarks,
        # A benchmark whose every sample failed on infrastructure has no figure (None).
        "macro_pass_at_1": _mean_of(benchmarks, "pass_at_1"),
        "macro_any_of_k": _mean_of(benchmarks, "any_of_k"),
        "macro_score": _mean_of(benchmarks, "score"),
        "counts": {o: sum(v["counts"][o] for v in benchmarks.values()) for o in OUTCOMES},
        "paper_macro": PAPER_MACRO,
    }


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    (args,) = make_parser().parse_args_and_config(list(argv) if argv is not None else None)
    metrics = MetricsWriter(args.metrics_file)
    cancel = CancelToken().install()
    metrics.emit("start", kind="evaluate", output_dir=args.output_dir, config=resolved_config(args))
    try:
        results = evaluate(args, metrics=metrics, cancel=cancel)
    except Exception as exc:
        metrics.done("failed", error=exc, output_dir=args.output_dir)
        raise
    print(format_table(results))
    metrics.done(
        results["status"],
        step=results["samples_done"],
        max_steps=results["samples_total"],
        output_dir=args.output_dir,
        results=str(Path(args.output_dir) / "results.json"),
        macro_pass_at_1=results["macro_pass_at_1"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
