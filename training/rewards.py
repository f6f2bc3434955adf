"""Reward functions for GRPO, plain ``(completions, **kwargs) -> list[float | None]``.

TRL passes every dataset column as a keyword list (here ``answer``, ``answer_status``, ``id``,
``benchmark``) and every extra key the rollout returned (``final_answer``, ``code_calls``,
``failed_code_calls``, ``finish_reason``). ``completions`` are the decoded completion texts
(strings; a chat-style list of messages is read too). Functions that need a setting (a rule, a
budget) are built by a ``make_*`` factory; the bare names use the defaults.

- ``correctness``: 1 if the final answer matches the reference under ``rule``/``tolerance``
  (``curation.engine.judge``: "relative" |a−r|/(|r|+1) ≤ tol, or "percent5"), else 0. A problem
  without an optimal value is answered correctly only by a no-solution answer. (STORM)
- ``all_failed_penalty``: −0.1 when the response ran code and every run failed. (CoRT)
- ``code_call_penalty``: −``penalty`` per code call beyond ``budget``. (SEM-like)
- ``calibration``: RLCR, correctness − (confidence − correctness)², with the confidence stated as
  ``Confidence: 0.8`` / ``\\confidence{0.8}`` / ``<confidence>80%</confidence>``; a response that
  states none is scored as confidence 1 − correctness (the worst Brier term).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from curation.engine import FinalAnswer, extract_final_answer, judge

RewardFunc = Callable[..., list[float | None]]

_CONFIDENCE_RE = re.compile(
    r"\\confidence\s*\{\s*([0-9]*\.?[0-9]+)\s*(%?)\s*\}"
    r"|<confidence>\s*([0-9]*\.?[0-9]+)\s*(%?)\s*</confidence>"
    r"|confidence\s*(?:level)?\s*[:=]\s*\**\s*([0-9]*\.?[0-9]+)\s*(%?)",
    re.IGNORECASE,
)


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the content of chat-style messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def _final(completion: Any, final_answer: Any) -> FinalAnswer | None:
    """The rollout's final answer when it was passed on, else one read from the text."""
    if isinstance(final_answer, FinalAnswer):
        return final_answer
    if isinstance(final_answer, dict):
        return FinalAnswer.from_dict(final_answer)
    return extract_final_answer(completion_text(completion))


def _column(kwargs: dict[str, Any], key: str, n: int, default: Any = None) -> list[Any]:
    values = kwargs.get(key)
    if values is None:
        return [default] * n
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{key}: {len(values)} values for {n} completions")
    return values


def correctness_scores(
    completions: Sequence[Any],
    *,
    rule: str = "relative",
    tolerance: float = 1e-6,
    **kwargs: Any,
) -> list[float]:
    """1.0 / 0.0 per completion (see the module docstring)."""
    n = len(completions)
    answers = _column(kwargs, "answer", n)
    statuses = _column(kwargs, "answer_status", n, "value")
    finals = _column(kwargs, "final_answer", n)
    out = []
    for completion, answer, status, final in zip(
        completions, answers, statuses, finals, strict=True
    ):
        status = status or ("value" if answer is not None else "no_best_solution")
        ok = judge(
            _final(completion, final),
            answer,
            answer_status=status,
            rule=rule,
            tolerance=tolerance,
        )
        out.append(1.0 if ok else 0.0)
    return out


def make_correctness_reward(rule: str = "relative", tolerance: float = 1e-6) -> RewardFunc:
    """The binary tolerance reward with a fixed rule and tolerance."""
    judge(1.0, 1.0, rule=rule, tolerance=tolerance)  # an unknown rule fails here, not mid-run

    def correctness(completions, **kwargs) -> list[float | None]:
        """1 when the final answer matches the reference objective, else 0."""
        kwargs.pop("rule", None)
        kwargs.pop("tolerance", None)
        return correctness_scores(completions, rule=rule, tolerance=tolerance, **kwargs)

    return correctness


def make_all_failed_penalty(penalty: float = 0.1) -> RewardFunc:
    """CoRT's penalty: ``-penalty`` when code ran and every execution failed."""

    def all_failed_penalty(completions, **kwargs) -> list[float | None]:
        """-0.1 when every code execution of the response failed (none ran: 0)."""
        n = len(completions)
        calls = _column(kwargs, "code_calls", n, 0)
        failed = _column(kwargs, "failed_code_calls", n, 0)
        return [
            -abs(penalty) if (c or 0) > 0 and (f or 0) >= (c or 0) else 0.0
            for c, f in zip(calls, failed, strict=True)
        ]

    return all_failed_penalty


def make_code_call_penalty(budget: int = 4, penalty: float = 0.05) -> RewardFunc:
    """A SEM-like efficiency term: ``-penalty`` per code call beyond ``budget``."""

    def code_call_penalty(completions, **kwargs) -> list[float | None]:
        """-penalty for every code call past the budget."""
        calls = _column(kwargs, "code_calls", len(completions), 0)
        return [-abs(penalty) * max(0, int(c or 0) - budget) for c in calls]

    return code_call_penalty


def stated_confidence(text: str) -> float | None:
    """The last confidence the text states, in [0, 1] (``80%`` and ``80`` read as 0.8)."""
    matches = list(_CONFIDENCE_RE.finditer(text))
    if not matches:
        return None
    groups = [g for g in matches[-1].groups()]
    number = next(g for g in groups[0::2] if g is not None)
    percent = any(g == "%" for g in groups[1::2])
    value = float(number)
    if percent or value > 1.0:
        value /= 100.0
    return min(max(value, 0.0), 1.0)


def make_calibration_reward(rule: str = "relative", tolerance: float = 1e-6) -> RewardFunc:
    """RLCR's reward: correctness − (confidence − correctness)² (a Brier penalty)."""

    def calibration(completions, **kwargs) -> list[float | None]:
        """Correctness minus the Brier score of the stated confidence."""
        kwargs.pop("rule", None)
        kwargs.pop("tolerance", None)
        correct = correctness_scores(completions, rule=rule, tolerance=tolerance, **kwargs)
        out = []
        for completion, c in zip(completions, correct, strict=True):
            q = stated_confidence(_answer_part(completion_text(completion)))
            if q is None:
                q = 1.0 - c  # no confidence stated: the worst Brier term
            out.append(c - (q - c) ** 2)
        return out

    return calibration


def _answer_part(text: str) -> str:
    return text.rsplit("</think>", 1)[1] if "</think>" in text else text


# The bare names, with default settings.
correctness = make_correctness_reward()
all_failed_penalty = make_all_failed_penalty()
code_call_penalty = make_code_call_penalty()
calibration = make_calibration_reward()

REWARDS = ("correctness", "all_failed_penalty", "code_call_penalty", "calibration")


def build_reward_funcs(
    names: Sequence[str],
    *,
    rule: str = "relative",
    tolerance: float = 1e-6,
    failed_penalty: float = 0.1,
    code_call_budget: int = 4,
    code_call_penalty_per_call: float = 0.05,
) -> list[RewardFunc]:
    """Reward functions by name, with the run's settings."""
    factories: dict[str, Callable[[], RewardFunc]] = {
        "correctness": lambda: make_correctness_reward(rule, tolerance),
        "all_failed_penalty": lambda: make_all_failed_penalty(failed_penalty),
        "code_call_penalty": lambda: make_code_call_penalty(
            code_call_budget, code_call_penalty_per_call
        ),
        "calibration": lambda: make_calibration_reward(rule, tolerance),
    }
    out = []
    for name in names:
        if name not in factories:
            raise ValueError(f"unknown reward {name!r}; choose from {', '.join(REWARDS)}")
        out.append(factories[name]())
    if not out:
        raise ValueError("at least one reward function is needed")
    return out
