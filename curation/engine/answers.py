"""Final answers: what the model stated, the last ``\\boxed{}`` after its reasoning (the sandbox's
last optimal objective is recorded beside it, and credited only where a setting says so); and
the one recogniser of an answer that says there is no solution. Judging an answer under a
public evaluator's rule is in ``answer_rules``, which builds on this module (never the other way
round)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

NO_SOLUTION = "no_solution"  # infeasible, unbounded, or "no optimal solution"

# The kinds of no-solution answer (``no_solution_kind``); answer rules say which they accept.
INFEASIBLE = "infeasible"
UNBOUNDED = "unbounded"
NO_OPTIMUM = "no_optimum"  # "no optimal / best solution", "does not exist", ...

_INFEASIBLE_RE = re.compile(r"infeasib|not\s+feasible|no\s+feasible|不可行", re.IGNORECASE)
_UNBOUNDED_RE = re.compile(r"unbounded|无界|unlimited", re.IGNORECASE)
_NO_OPTIMUM_RE = re.compile(
    r"no\s+(?:optimal|best)?\s*solution|not\s+solvable|does\s+not\s+(?:exist|have)"
    r"|no\s+optimum|无解|无最优",
    re.IGNORECASE,
)
_NUMBER_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_THOUSANDS_RE = re.compile(r"(?<=\d)[,\s](?=\d{3}(?!\d))")
# "1.5 \times 10^{4}", "1.5 \cdot 10^4", "1.5 × 10^4", "1.5*10**4": scientific notation as written
_TIMES_TEN_RE = re.compile(
    r"(\d+(?:\.\d*)?|\.\d+)\s*(?:\\times|\\cdot|×|·|\*)\s*10\s*(?:\^|\*\*)\s*"
    r"(?:\{\s*([-+]?\d+)\s*\}|([-+]?\d+))"
)
# "(x = 3)" after a value is an annotation (where the optimum is), not the value.
_ASSIGNMENT_ASIDE_RE = re.compile(r"\([^()]*=[^()]*\)")


@dataclass
class FinalAnswer:
    """What a trajectory answered. ``value`` is the number (None when there is none or the
    answer says there is no optimal solution); ``kind`` is "value", "no_solution" or "unparsed";
    ``source`` is "boxed" or "sandbox"."""

    text: str
    value: float | None
    kind: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FinalAnswer | None:
        return cls(**data) if data else None

    @classmethod
    def from_stored(cls, text: str, value: float | None, source: str) -> FinalAnswer | None:
        """An answer kept as a trajectory row keeps it (text, value, source; no kind)."""
        if not text and value is None:
            return None
        if value is not None:
            return cls(text=text, value=value, kind="value", source=source)
        kind = NO_SOLUTION if no_solution_kind(text) else "unparsed"
        return cls(text=text, value=None, kind=kind, source=source)


def no_solution_kind(text: str) -> str | None:
    """Which no-solution answer ``text`` gives: infeasible, unbounded, no_optimum, or None.

    The one recogniser of "no solution": extracting an answer (kind "no_solution") and judging
    it (``answer_rules``) both ask it, so a word is never read one way and judged another."""
    if _INFEASIBLE_RE.search(text):
        return INFEASIBLE
    if _UNBOUNDED_RE.search(text):
        return UNBOUNDED
    if _NO_OPTIMUM_RE.search(text):
        return NO_OPTIMUM
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
    return None


def parse_number(text: str) -> float | None:
    """The number an answer states: ``\\frac{a}{b}``, ``1,500``, ``$1500``, ``1500 dollars``,
    ``x = 3, z = 1500`` (the value after the last ``=``), ``1500 (x = 3)`` (an aside in
    parentheses is not the value), ``2.5e3``, ``1.5 \\times 10^{4}``, ``45\\%`` (→ 45)."""
    s = text.replace("\\$", "").replace("$", "").replace("\\,", "").replace("\\!", "")
    s = s.replace("\\left", "").replace("\\right", "").replace("−", "-")
    s = re.sub(r"\\(?:text|mathrm|textbf|mathbf)\s*\{([^{}]*)\}", r" \1 ", s)
    s = _FRAC_RE.sub(lambda m: f"({m.group(1)})/({m.group(2)})", s)
    s = _times_ten(s)
    s = _THOUSANDS_RE.sub("", s)
    stripped = _ASSIGNMENT_ASIDE_RE.sub(" ", s)
    if _NUMBER_RE.search(stripped):  # "1500 (x = 3)" states 1500; "(x = 3)" alone states 3
        s = stripped
    for sep in ("=", "\\approx", "≈"):
        if sep in s:
            s = s.rsplit(sep, 1)[1]
    frac = re.search(
        rf"\(?\s*({_NUMBER_RE.pattern})\s*\)?\s*/\s*\(?\s*({_NUMBER_RE.pattern})\s*\)?", s
    )
    first = _NUMBER_RE.search(s)
    if frac and first and frac.start() <= first.start() + 1:
        denominator = float(frac.group(2))
        return float(frac.group(1)) / denominator if denominator else None
    if first is None:
        return None
    try:
        value = float(first.group(0))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _times_ten(s: str) -> str:
    """``1.5 \\times 10^{4}`` → ``1.5e4`` (every form ``_TIMES_TEN_RE`` knows)."""
    return _TIMES_TEN_RE.sub(lambda m: f"{m.group(1)}e{m.group(2) or m.group(3)}", s)


_OUTPUT_BLOCK_END_RE = re.compile(r"```output\n.*?```[^\n]*\n?", re.DOTALL)


def final_step_of_text(text: str) -> str:
    """The final step of a response known only as text: what follows the last ```output block
    (the engine knows its steps from token tags; a text has only its fences), else all of it."""
    ends = [m.end() for m in _OUTPUT_BLOCK_END_RE.finditer(text)]
    return text[ends[-1] :] if ends else text


def _answer_region(text: str, final_step: str | None) -> str:
    """Where a stated answer may stand: after ``</think>``; a trajectory that never closed its
    thought has its final step (the text after the last code output) as its last words (read
    from the text when the caller does not know its steps); a model that does not think
    answers in the open."""
    if "</think>" in text:
        return text.rsplit("</think>", 1)[1]
    if final_step is not None:
        return final_step
    return final_step_of_text(text)


def extract_final_answer(
    text: str,
    results: Sequence[dict[str, Any] | None] = (),
    *,
    final_step: str | None = None,
    credit_sandbox: bool = False,
) -> FinalAnswer | None:
    """THE decision of what a response answered, used by the engine for every rollout (so by
    curation, evaluation and the GRPO reward, which take the rollout's result and never read
    the text again) and by ``manage.py judge --response``.

    The stated answer is the last ``\\boxed{}`` after the reasoning: after ``</think>``, or in
    the final step (the text after the last code output) when the thought was never closed.
    Only with ``credit_sandbox`` does the objective of the last optimal solve in ``results``
    stand in for an answer the model never stated. None when there is no answer: a trajectory
    cut at its budget before it boxed anything has none, and scores 0."""
    boxed = last_boxed(_answer_region(text, final_step))
    if boxed is not None:
        if no_solution_kind(boxed):
            return FinalAnswer(text=boxed, value=None, kind=NO_SOLUTION, source="boxed")
        value = parse_number(boxed)
        return FinalAnswer(
            text=boxed, value=value, kind="value" if value is not None else "unparsed",
            source="boxed",
        )  # fmt: skip
    value = last_optimal_objective(results) if credit_sandbox else None
    if value is not None:
        return FinalAnswer(text=_fmt(value), value=value, kind="value", source="sandbox")
    return None


def last_optimal_objective(results: Sequence[dict[str, Any] | None]) -> float | None:
    """The objective of the last solve with termination "optimal" across sandbox results."""
    for result in reversed(list(results)):
        if not result:
            continue
        for solve in reversed(result.get("solves") or []):
            if solve.get("termination") == "optimal" and _finite(solve.get("objective")):
                return float(solve["objective"])
        if result.get("solver_status") == "optimal" and _finite(result.get("objective")):
            return float(result["objective"])
    return None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _fmt(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
