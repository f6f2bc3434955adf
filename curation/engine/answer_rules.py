"""Answer rules as named presets: how a published evaluator decides that an already-extracted
answer matches a reference objective.

Each preset is data (``AnswerRule``): a comparison kind, a tolerance (fixed, or a setting), and
how answers that say "no optimal solution", "infeasible" or "unbounded" are matched. The
comparison itself is one function per kind, below. What the public evaluators do:

- ORLM ``eval/execute.py`` (Cardinal-Operations/ORLM): ``round(float(pred))`` and
  ``round(float(gt))``, then ``abs((pred - gt) / gt) <= 0.05`` (``abs(pred) <= 0.05`` when
  ``gt == 0``). Its executor prints "No Best Solution" for any status other than OPTIMAL, so an
  infeasible or unbounded model counts as "no optimal solution"; that reference matches only
  that answer. Its "pass@k" is any-of-k.
- SIRL ``check_result.py`` (Cardinal-Operations/SIRL): ``abs(pred - gt) / (abs(gt) + 1) <=
  1e-6``; an ``en_answer`` of "No Best Solution" or containing "-9999" means no optimal value,
  matched by an "Infeasible" solver log (or no objective at all). OptMATH's benchmark scripts
  use the same 1e-6 relative test.
- STORM (CALM paper, arXiv 2510.04204): reward 1 when ``|a - r| / |r| <= eps``; eps is not
  stated, so it is a setting here.
- CoRT ``evaluation/compute_metrics_dp.py`` (ChengpengLi1003/CoRT): a math grader, exact match
  after normalising the two strings (``grade_answer_mathd``), or symbolic equality; it knows no
  "no solution" answer, so here only the literal phrase matches after normalisation.

No Django import: the training worker and the management command share it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .answers import (
    INFEASIBLE,
    NO_OPTIMUM,
    NO_SOLUTION,
    UNBOUNDED,
    FinalAnswer,
    last_boxed,
    no_solution_kind,
    parse_number,
)


@dataclass(frozen=True)
class AnswerRule:
    """One evaluator's rule.

    ``kind``: "relative_plus1" |a−r|/(|r|+1) ≤ tol; "relative" |a−r|/|r| ≤ tol (|a| ≤ tol when
    r = 0); "rounded_relative" the same after rounding both to integers; "exact" equality of the
    normalised texts (or of the numbers they state). ``tolerance_is_setting``: whether a caller's
    tolerance replaces ``tolerance``. ``no_solution``: which no-solution kinds of answer match a
    reference without an optimal value. ``no_solution_pattern``: for "exact", the normalised
    answer texts that say "no optimal solution".
    """

    name: str
    kind: str
    tolerance: float
    description: str
    source: str
    tolerance_is_setting: bool = False
    no_solution: frozenset[str] = field(
        default_factory=lambda: frozenset({INFEASIBLE, UNBOUNDED, NO_OPTIMUM})
    )
    no_solution_pattern: str = ""

    def effective_tolerance(self, tolerance: float | None = None) -> float:
        """The tolerance this rule applies given a caller's setting (ignored when fixed)."""
        if self.tolerance_is_setting and tolerance is not None:
            if not (isinstance(tolerance, int | float) and math.isfinite(tolerance)) or (
                tolerance < 0
            ):
                raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
            return float(tolerance)
        return self.tolerance

    def label(self, tolerance: float | None = None) -> str:
        """``sirl``, or ``storm-paper (ε=0.001)`` where the tolerance is a setting."""
        if not self.tolerance_is_setting:
            return self.name
        return f"{self.name} (ε={self.effective_tolerance(tolerance):g})"


RULES: dict[str, AnswerRule] = {
    rule.name: rule
    for rule in (
        AnswerRule(
            name="orlm", kind="rounded_relative", tolerance=0.05,
            description="round both to integers, then |a−r|/|r| ≤ 5% (|a| ≤ 0.05 when r = 0)",
            source="ORLM eval/execute.py",
        ),
        AnswerRule(
            name="sirl", kind="relative_plus1", tolerance=1e-6,
            description="|a−r|/(|r|+1) ≤ 1e-6", source="SIRL check_result.py",
        ),
        AnswerRule(
            name="optmath", kind="relative_plus1", tolerance=1e-6,
            description="|a−r|/(|r|+1) ≤ 1e-6", source="OptMATH benchmark scripts (as SIRL)",
        ),
        AnswerRule(
            name="storm-paper", kind="relative", tolerance=1e-6, tolerance_is_setting=True,
            description="|a−r|/|r| ≤ ε (|a| ≤ ε when r = 0); ε is a setting",
            source="CALM/STORM paper, reward definition",
        ),
        AnswerRule(
            name="cort-math", kind="exact", tolerance=0.0,
            description="exact match after normalisation (LaTeX, spaces, thousands, trailing 0s)",
            source="CoRT evaluation/compute_metrics_dp.py (grade_answer_mathd)",
            no_solution=frozenset({NO_OPTIMUM}),
            no_solution_pattern=r"no(?:optimal|best)solution",
        ),
        # The rules this product had before presets, kept so stored batch and run configs read.
        AnswerRule(
            name="relative", kind="relative_plus1", tolerance=1e-6, tolerance_is_setting=True,
            description="|a−r|/(|r|+1) ≤ tolerance (a setting)", source="CALM Studio (legacy)",
        ),
        AnswerRule(
            name="percent5", kind="rounded_relative", tolerance=0.05,
            description="as orlm", source="CALM Studio (legacy name of orlm)",
        ),
    )
}  # fmt: skip
PRESETS = ("orlm", "sirl", "optmath", "storm-paper", "cort-math")


def get_rule(name: str) -> AnswerRule:
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown answer rule {name!r}; choose from {', '.join(RULES)}") from None


@dataclass(frozen=True)
class Judgement:
    """``correct``; ``error`` as the rule measures it (None when no number was compared);
    ``reason`` in a few words."""

    correct: bool
    error: float | None
    reason: str


def normalise(text: str) -> str:
    """CoRT-style normal form: no LaTeX wrappers, units, spaces, thousands separators or
    trailing zeros, lower case (``\\text{\\$1,500.00}`` → ``1500``)."""
    s = text.strip().lower()
    s = re.sub(r"\\(?:text|mathrm|textbf|mathbf|boxed)\s*\{([^{}]*)\}", r"\1", s)
    s = re.sub(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}", r"\1/\2", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "")
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)
    s = re.sub(r"\s+", "", s).rstrip(".")
    s = re.sub(r"^(-?\d+)\.0*$", r"\1", s)
    s = re.sub(r"^(-?\d+\.\d*?)0+$", r"\1", s)
    return s


def judge_text(
    rule: str | AnswerRule,
    answer: str | FinalAnswer | None,
    reference: float | str | None,
    *,
    tolerance: float | None = None,
) -> Judgement:
    """Judge one extracted answer against a reference objective under ``rule``.

    ``answer``: the text inside ``\\boxed{}`` (or a ``FinalAnswer``; None: no answer).
    ``reference``: the optimal value, or None (or "none") for "no optimal solution".
    """
    preset = rule if isinstance(rule, AnswerRule) else get_rule(rule)
    tol = preset.effective_tolerance(tolerance)
    text = _text(answer)
    if isinstance(reference, str):
        reference = _reference(reference)
    if text is None or not text.strip():
        return Judgement(False, None, "no answer")
    if reference is None:
        return _judge_no_solution(preset, text)
    if no_solution_kind(text) is not None:
        return Judgement(False, None, "answered no solution; the reference has a value")
    if preset.kind == "exact":
        return _judge_exact(text, float(reference))
    value = answer.value if isinstance(answer, FinalAnswer) and answer.value is not None else None
    value = parse_number(text) if value is None else value
    if value is None:
        return Judgement(False, None, "no number in the answer")
    error = relative_error(preset.kind, value, float(reference))
    ok = error <= tol
    return Judgement(ok, error, f"error {error:.3g} {'≤' if ok else '>'} {tol:g}")


def relative_error(kind: str, a: float, r: float) -> float:
    """The error a comparison kind measures (for r = 0, |a| itself in "relative" kinds)."""
    if kind == "relative_plus1":
        return abs(a - r) / (abs(r) + 1.0)
    if kind == "rounded_relative":
        a, r = round(a), round(r)
    if kind in ("relative", "rounded_relative"):
        return abs(a) if r == 0 else abs(a - r) / abs(r)
    raise ValueError(f"no numeric error for rule kind {kind!r}")


def _judge_no_solution(preset: AnswerRule, text: str) -> Judgement:
    if preset.kind == "exact":
        ok = re.fullmatch(preset.no_solution_pattern, normalise(text)) is not None
        return Judgement(ok, None, "no-solution phrase" if ok else "not the no-solution phrase")
    kind = no_solution_kind(text)
    if kind is None:
        return Judgement(False, None, "the reference has no optimal solution")
    ok = kind in preset.no_solution
    return Judgement(
        ok, None, f"answered {kind}" + ("" if ok else f", which {preset.name} rejects")
    )


def _judge_exact(text: str, reference: float) -> Judgement:
    a = normalise(text)
    r = normalise(_format(reference))
    if a == r:
        return Judgement(True, 0.0, "same after normalisation")
    try:
        same = float(a) == reference
    except ValueError:
        same = False
    return Judgement(same, 0.0 if same else None, "same number" if same else f"{a!r} ≠ {r!r}")


def _format(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _text(answer: str | FinalAnswer | None) -> str | None:
    if isinstance(answer, FinalAnswer):
        return answer.text
    return answer


def _reference(text: str) -> float | None:
    """A reference from the command line or a file: a number, or none / No Best Solution."""
    stripped = text.strip()
    if stripped.lower() in ("none", "null", "") or no_solution_kind(stripped):
        return None
    try:
        value = float(stripped)
    except ValueError:
        raise ValueError(f"reference must be a number or 'none', got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"reference must be finite, got {text!r}")
    return value


def judge(
    answer: FinalAnswer | str | float | None,
    reference: float | str | None,
    *,
    answer_status: str = "value",
    rule: str = "relative",
    tolerance: float | None = None,
) -> bool:
    """Whether ``answer`` matches the reference objective under the named answer rule.

    The rules are the presets above (orlm, sirl, optmath, storm-paper, cort-math;
    "relative" and "percent5" are the older names). ``tolerance`` replaces the preset's only
    where the preset makes it a setting. A problem without an optimal value (``reference``
    None, or ``answer_status`` other than "value") is answered correctly only by a
    no-solution answer the preset accepts.
    """
    if answer_status != "value":
        reference = None
    return judge_text(rule, _as_final(answer), reference, tolerance=tolerance).correct


def _as_final(answer: FinalAnswer | str | float | None) -> FinalAnswer | None:
    if answer is None or isinstance(answer, FinalAnswer):
        return answer
    if isinstance(answer, int | float):
        return FinalAnswer(text=str(answer), value=float(answer), kind="value", source="given")
    text = str(answer)
    if no_solution_kind(text):
        return FinalAnswer(text=text, value=None, kind=NO_SOLUTION, source="given")
    value = parse_number(last_boxed(text) or text)
    return FinalAnswer(text=text, value=value, kind="value" if value is not None else "unparsed",
                       source="given")  # fmt: skip
