"""How an evaluation turns stored answers into figures, in one place: the evaluation script
calls it while sampling, and re-judging a finished evaluation calls it again on the stored
answers under another answer rule (no model, no sandbox, no trajectory touched).

Per sample: an outcome (correct / wrong / no_answer / endpoint_error / infrastructure) under
the rule. A sample the sandbox failed (infrastructure: it could not run code) says nothing of
the model: it is counted apart and left out of every figure. Per problem: pass@1 as the mean
over its k scored samples, and any-of-k (CoRT's and ORLM's "pass@k": one
correct sample is enough). Per benchmark: the means of both, the figure the evaluation's mode
names, the outcome counts, and, when samples stated confidences, the Brier score.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from curation.engine import FinalAnswer
from curation.engine.answer_rules import get_rule, judge_text

# CALM.md "Results to aim at": pass@1 % of Qwen3-4B-Thinking-2507 (base) and STORM.
PAPER_RESULTS: dict[str, dict[str, float]] = {
    "NL4Opt": {"base": 67.9, "storm": 70.3},
    "MAMO-EasyLP": {"base": 80.0, "storm": 85.9},
    "MAMO-ComplexLP": {"base": 44.5, "storm": 68.3},
    "IndustryOR": {"base": 45.4, "storm": 63.5},
    "OptMATH": {"base": 47.7, "storm": 56.3},
}
PAPER_MACRO = {"base": 57.1, "storm": 68.9}


def _key(name: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return key.removesuffix("bench")


def paper_numbers(benchmark: str) -> dict[str, float] | None:
    """The paper's row for a benchmark name ("MAMO EasyLP", "mamo_easylp", "OptMATH-Bench")."""
    wanted = _key(benchmark)
    for name, numbers in PAPER_RESULTS.items():
        if _key(name) == wanted:
            return numbers
    return None


MODES = {"mean": "pass@1, mean over k samples", "any": "any of k samples correct"}
OUTCOMES = ("correct", "wrong", "no_answer", "endpoint_error", "infrastructure")
UNSCORED = ("infrastructure",)  # outcomes left out of pass@1 and any-of-k


def judge_sample(
    final_answer: dict[str, Any] | None,
    *,
    reference: float | None,
    answer_status: str,
    rule: str,
    tolerance: float | None,
    endpoint_error: bool = False,
    infrastructure: bool = False,
) -> str:
    """The outcome of one sample: an endpoint error (the model server failed: no answer is
    the model's fault) is kept apart from "no answer" and from a wrong one, and so is an
    infrastructure failure (the sandbox could not run the model's code)."""
    if infrastructure:
        return "infrastructure"
    if endpoint_error:
        return "endpoint_error"
    final = FinalAnswer.from_dict(final_answer)
    if final is None:
        return "no_answer"
    if answer_status != "value":
        reference = None
    ok = judge_text(rule, final, reference, tolerance=tolerance).correct
    return "correct" if ok else "wrong"


def rule_record(rule: str, tolerance: float | None) -> dict[str, Any]:
    """What an evaluation stores about its rule (the tolerance it actually applied)."""
    preset = get_rule(rule)
    return {
        "rule": preset.name,
        "tolerance": preset.effective_tolerance(tolerance),
        "rule_label": preset.label(tolerance),
        "rule_description": preset.description,
        "rule_source": preset.source,
    }


def problem_set_hash(problems: list[dict[str, Any]]) -> dict[str, Any]:
    """sha256 of the problems as judged (id, question, reference), overall and per benchmark:
    two evaluations with equal hashes asked the same questions against the same answers."""

    def digest(rows: list[dict[str, Any]]) -> str:
        canon = sorted(
            [p["benchmark"], p["id"], p["question"], p["answer"], p["answer_status"]] for p in rows
        )
        text = json.dumps(canon, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    by_benchmark: dict[str, list[dict[str, Any]]] = {}
    for p in problems:
        by_benchmark.setdefault(p["benchmark"], []).append(p)
    return {
        "sha256": digest(problems),
        "n_problems": len(problems),
        "benchmarks": {name: digest(rows) for name, rows in sorted(by_benchmark.items())},
    }


def brier(samples: list[dict[str, Any]]) -> tuple[float | None, int]:
    """Mean (confidence − correctness)² over the samples that stated a confidence, and how many
    did."""
    stated = [s for s in samples if s.get("confidence") is not None]
    if not stated:
        return None, 0
    total = sum((s["confidence"] - (s["outcome"] == "correct")) ** 2 for s in stated)
    return total / len(stated), len(stated)


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def benchmark_summary(rows: list[dict[str, Any]], *, mode: str) -> dict[str, Any]:
    """Figures of one benchmark from its problems' rows (each with ``samples`` carrying an
    ``outcome``); fills each row's ``pass_at_1`` and ``any_of_k`` (None for a problem whose
    every sample failed on infrastructure: it is left out of the benchmark's figures)."""
    for row in rows:
        got = [s for s in row["samples"] if s["outcome"] not in UNSCORED]
        right = [s["outcome"] == "correct" for s in got]
        row["pass_at_1"] = sum(right) / len(got) if got else None
        row["any_of_k"] = float(any(right)) if got else None
    scored_rows = [row for row in rows if row["pass_at_1"] is not None]
    flat = [s for row in rows for s in row["samples"]]
    counts = {o: sum(s["outcome"] == o for s in flat) for o in OUTCOMES}
    score, n_conf = brier([s for s in flat if s["outcome"] not in UNSCORED])
    pass_at_1 = _mean(row["pass_at_1"] for row in scored_rows)
    any_of_k = _mean(row["any_of_k"] for row in scored_rows)
    return {
        "n_problems": len(rows),
        "n_scored_problems": len(scored_rows),
        "n_samples": len(flat),
        "pass_at_1": pass_at_1,
        "any_of_k": any_of_k,
        "score": any_of_k if mode == "any" else pass_at_1,
        "counts": counts,
        "brier": score,
        "n_confidences": n_conf,
        "mean_code_calls": _mean(
            s.get("code_calls", 0) for s in flat if s["outcome"] not in UNSCORED
        ),
        "mean_response_tokens": _mean(
            s.get("response_tokens", 0) for s in flat if s["outcome"] not in UNSCORED
        ),
    }


def rejudge(results: dict[str, Any], *, rule: str, tolerance: float | None) -> dict[str, Any]:
    """The figures of a finished evaluation's ``results`` under another rule, from the answers
    it stored: per benchmark as ``benchmark_summary`` gives them. Does not change ``results``."""
    mode = (results.get("record") or {}).get("mode", "mean")
    out: dict[str, Any] = {}
    for name, entry in (results.get("benchmarks") or {}).items():
        rows = []
        for problem in entry.get("problems") or []:
            samples = []
            for s in problem.get("samples") or []:
                outcome = judge_sample(
                    s.get("final_answer"), reference=problem.get("answer"),
                    answer_status=problem.get("answer_status", "value"), rule=rule,
                    tolerance=tolerance, endpoint_error=s.get("outcome") == "endpoint_error",
                    infrastructure=s.get("outcome") == "infrastructure",
                )  # fmt: skip
                samples.append({**s, "outcome": outcome, "correct": outcome == "correct"})
            if samples:
                rows.append({**problem, "samples": samples})
        if rows:
            out[name] = benchmark_summary(rows, mode=mode)
    return out


def endpoint_record(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The endpoint as evaluated: backend, model, URL, tokenizer (an API key only by the name
    of its variable, as the spec holds it)."""
    spec = spec or {}
    keep = ("backend", "name", "model", "base_url", "tokenizer", "api_key_env", "prompt_mode")
    return {k: spec[k] for k in keep if spec.get(k) not in (None, "")}


def evaluation_record(
    *,
    rule: str,
    tolerance: float | None,
    k: int,
    mode: str,
    sampling: dict[str, Any],
    system_prompt: str,
    think_prefix: str,
    asks_confidence: bool,
    problems: list[dict[str, Any]],
) -> dict[str, Any]:
    """What an evaluation was: rule and tolerance, k and mode, sampling, prompt (and its hash),
    the problem set's hash and the answer versions of its references."""
    prompt_hash = hashlib.sha256(f"{system_prompt}\x00{think_prefix}".encode()).hexdigest()
    return {
        **rule_record(rule, tolerance),
        "k": k,
        "mode": mode,
        "mode_description": MODES[mode],
        "sampling": sampling,
        "prompt": {
            "system_prompt": system_prompt, "think_prefix": think_prefix,
            "asks_confidence": asks_confidence, "sha256": prompt_hash,
        },
        "problem_set": problem_set_hash(problems),
        "answer_versions": sorted({p.get("answer_version") for p in problems} - {None}),
    }  # fmt: skip


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table: the figure per benchmark beside the paper's base / STORM numbers,
    with the rule, k and mode it was computed under and the outcome counts."""

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    def paper(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rec = results.get("record") or {}
    figure = "any@k" if results.get("mode") == "any" else "pass@1"
    header = (
        f"{'benchmark':<18} {'n':>5} {'k':>3} {figure:>7} {'base':>6} {'STORM':>6} "
        f"{'wrong':>6} {'none':>5} {'error':>6}"
    )
    lines = [header, "-" * len(header)]
    for name, entry in results["benchmarks"].items():
        numbers = entry.get("paper") or {}
        counts = entry.get("counts") or {}
        lines.append(
            f"{name:<18} {entry['n_problems']:>5} {results['k']:>3} {pct(entry['score']):>7} "
            f"{paper(numbers.get('base')):>6} {paper(numbers.get('storm')):>6} "
            f"{counts.get('wrong', 0):>6} {counts.get('no_answer', 0):>5} "
            f"{counts.get('endpoint_error', 0):>6}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"{'macro average':<18} {'':>5} {'':>3} {pct(results.get('macro_score')):>7} "
        f"{paper(PAPER_MACRO['base']):>6} {paper(PAPER_MACRO['storm']):>6}"
    )
    lines.append("(paper: Qwen3-4B-Thinking-2507 base and STORM, pass@1 % on all five benchmarks)")
    infra = (results.get("counts") or {}).get("infrastructure", 0)
    if infra:
        lines.append(
            f"{infra} sample(s) not scored: the sandbox could not run code (infrastructure)"
        )
    set_hash = (rec.get("problem_set") or {}).get("sha256", "")[:12]
    lines.append(
        f"rule {rec.get('rule_label', results.get('rule'))}: {rec.get('rule_description', '')}; "
        f"{rec.get('mode_description', figure)}; problem set {set_hash}"
    )
    return "\n".join(lines)


def reliability(samples: list[dict[str, Any]], *, bins: int = 10) -> list[dict[str, Any]]:
    """A reliability diagram's points: the samples that stated a confidence, in ``bins`` equal
    confidence bins (1.0 in the last); per non-empty bin its mean confidence, its accuracy and
    how many samples. A calibrated model's points lie on the diagonal."""
    grouped: dict[int, list[dict[str, Any]]] = {}
    for s in samples:
        q = s.get("confidence")
        if q is None or s.get("outcome") == "endpoint_error":
            continue
        grouped.setdefault(min(int(q * bins), bins - 1), []).append(s)
    return [
        {
            "lo": b / bins, "hi": (b + 1) / bins, "n": len(rows),
            "confidence": sum(r["confidence"] for r in rows) / len(rows),
            "accuracy": sum(r.get("outcome") == "correct" for r in rows) / len(rows),
        }
        for b, rows in sorted(grouped.items())
    ]  # fmt: skip
