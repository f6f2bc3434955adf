"""Reward functions for GRPO, plain ``(completions, **kwargs) -> list[float | None]``.

TRL passes every dataset column as a keyword list (here ``answer``, ``answer_status``, ``id``,
``benchmark``) and every extra key the rollout returned (``final_answer``, ``code_calls``,
``failed_code_calls``, ``finish_reason``). ``completions`` are the decoded completion texts
(strings; a chat-style list of messages is read too). A rollout that stopped on an
infrastructure failure (finish reason "infrastructure": the sandbox could not run code) gets
None from every function: TRL leaves it out of its group's baseline. Functions that need a
setting (a rule, a budget) are built by a ``make_*`` factory; the bare names use the defaults.

- ``correctness``: 1 if the final answer (the rollout's ``final_answer``, as the engine decided
  it; a rollout with no stated answer scores 0) matches the reference under ``rule``/``tolerance``
  (an answer-rule preset of ``curation.engine.answer_rules``: orlm, sirl, optmath, storm-paper,
  cort-math; "relative" is |a−r|/(|r|+1) ≤ tol), else 0. A problem without an optimal value is
  answered correctly only by a no-solution answer the rule accepts. (STORM)
- ``all_failed_penalty``: −0.1 when the response ran code and every run failed. (CoRT)
- ``code_call_penalty``: −``penalty`` per code call beyond ``budget``. (SEM-like)
- ``calibration``: RLCR, correctness − (confidence − correctness)². The prompt asks for
  ``<confidence>0.8</confidence>`` after the boxed answer (``CONFIDENCE_REQUEST``); the confidence
  is the last such tag after the last ``\\boxed{}``, a number in [0, 1]. A missing or malformed
  one (another format, a percentage, a value outside [0, 1]) scores as RLCR's reward does: its
  Brier reward is format-gated, so such a response gets the worst Brier term, as if it had said
  1 − correctness (damanimehul/RLCR ``reward_fns.py``, whose ``brier_reward`` is
  ``1 − (cr − conf)²`` only when the format holds; see TRL PR #5668 and RLCR issue #3).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from curation.engine import INFRASTRUCTURE, FinalAnswer, extract_final_answer, judge

RewardFunc = Callable[..., list[float | None]]

# RLCR's format: one number in [0, 1] inside the tag (a malformed value is not read).
_CONFIDENCE_RE = re.compile(r"<confidence>(.*?)</confidence>", re.IGNORECASE | re.DOTALL)
_NUMBER_RE = re.compile(r"\s*(?:0(?:\.\d+)?|1(?:\.0+)?|\.\d+)\s*")
CONFIDENCE_REQUEST = (
    "After the boxed answer, state how likely it is that your answer is correct, as a number "
    "between 0 and 1 in this format: <confidence>0.8</confidence>"
)


def with_confidence_request(system_prompt: str) -> str:
    """The system prompt with RLCR's request for a confidence appended (once)."""
    if CONFIDENCE_REQUEST in system_prompt:
        return system_prompt
    return (
        f"{system_prompt.rstrip()}\n\n{CONFIDENCE_REQUEST}" if system_prompt else CONFIDENCE_REQUEST
    )


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the content of chat-style messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def _final(completion: Any, final_answer: Any, *, from_rollout: bool) -> FinalAnswer | None:
    """The rollout's decision of what the completion answered, as the engine made it
    (``extract_final_answer`` on the tagged trajectory): None there is no stated answer, and
    the text is never read again (TRL's decoded completion has no ``<think>``: the forced
    prefix went into the prompt, so a re-read would take a guess inside the thought for the
    answer). Only completions that did not come from the engine rollout (no ``final_answer``
    column) are read from their text, by the same function."""
    if isinstance(final_answer, FinalAnswer):
        return final_answer
    if isinstance(final_answer, dict):
        return FinalAnswer.from_dict(final_answer)
    if from_rollout:
        return None
    return extract_final_answer(completion_text(completion))


def _skipped(kwargs: dict[str, Any], n: int) -> list[bool]:
    """Completions no reward may score: their rollout stopped on an infrastructure failure
    (the sandbox could not run code), which says nothing about the policy. Every reward
    returns None for them, so TRL leaves them out of the group baseline (advantage 0)."""
    return [reason == INFRASTRUCTURE for reason in _column(kwargs, "finish_reason", n)]


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
) -> list[float | None]:
    """1.0 / 0.0 per completion (see the module docstring); None where the rollout stopped on
    an infrastructure failure."""
    n = len(completions)
    answers = _column(kwargs, "answer", n)
    statuses = _column(kwargs, "answer_status", n, "value")
    finals = _column(kwargs, "final_answer", n)
    from_rollout = kwargs.get("final_answer") is not None
    out: list[float | None] = []
    for completion, answer, status, final, skip in zip(
        completions, answers, statuses, finals, _skipped(kwargs, n), strict=True
    ):
        if skip:
            out.append(None)
            continue
        status = status or ("value" if answer is not None else "no_best_solution")
        ok = judge(
            _final(completion, final, from_rollout=from_rollout),
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
            None if skip else -abs(penalty) if (c or 0) > 0 and (f or 0) >= (c or 0) else 0.0
            for c, f, skip in zip(calls, failed, _skipped(kwargs, n), strict=True)
        ]

    return all_failed_penalty


def make_code_call_penalty(budget: int = 4, penalty: float = 0.05) -> RewardFunc:
    """A SEM-like efficiency term: ``-penalty`` per code call beyond ``budget``."""

    def code_call_penalty(completions, **kwargs) -> list[float | None]:
        """-penalty for every code call past the budget."""
        n = len(completions)
        calls = _column(kwargs, "code_calls", n, 0)
        return [
            None if skip else -abs(penalty) * max(0, int(c or 0) - budget)
            for c, skip in zip(calls, _skipped(kwargs, n), strict=True)
        ]

    return code_call_penalty


def stated_confidence(text: str) -> float | None:
    """The confidence a completion states in RLCR's format: the last
    ``<confidence>q</confidence>`` after the last ``\\boxed{}`` of the answer (after
    ``</think>``), q in [0, 1]. None when it is missing or malformed."""
    answer = _answer_part(text)
    boxed = list(re.finditer(r"\\(?:boxed|fbox)\s*\{", answer))
    tail = answer[boxed[-1].end() :] if boxed else answer
    matches = list(_CONFIDENCE_RE.finditer(tail))
    if not matches or not _NUMBER_RE.fullmatch(matches[-1].group(1)):
        return None
    return float(matches[-1].group(1))


def make_calibration_reward(rule: str = "relative", tolerance: float = 1e-6) -> RewardFunc:
    """RLCR's reward: correctness − (confidence − correctness)² (a Brier penalty)."""

    def calibration(completions, **kwargs) -> list[float | None]:
        """Correctness minus the Brier score of the stated confidence."""
        kwargs.pop("rule", None)
        kwargs.pop("tolerance", None)
        correct = correctness_scores(completions, rule=rule, tolerance=tolerance, **kwargs)
        out = []
        for completion, c in zip(completions, correct, strict=True):
            if c is None:  # an infrastructure failure: not scored
                out.append(None)
                continue
            q = stated_confidence(completion_text(completion))
            if q is None:
                q = 1.0 - c  # missing or malformed: RLCR's format gate, the worst Brier term
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
