"""Checks over a trajectory's own record: the flaws the execution record already proves.

The sandbox knows whether a cell failed and with what error, what the solver returned (status
and objective) and whether any solver ran; the engine knows what answer was stated and where. A
small Intervener cannot be relied on to notice these; a check does, exactly and for free.

Each check returns at most one ``Finding``: a flaw type of the taxonomy, the step where the hint
goes (the step that goes on from the flawed record: the one that states the answer, or the one
right after a cell's output), the evidence (the error line, the value the solver returned) and
a hint in the Reasoner's own voice, its template filled with that evidence.

Which checks run and their hint templates are data: ``DEFAULT_CHECKS`` holds the defaults, and
``check_specs(overrides)`` applies an endpoint's ``checks`` prompt override
(``{name: {"enabled": bool, "hint": template, "flaw_type": code}}``). Plain Python, no Django.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .answers import FinalAnswer
from .format import Step
from .intervener import Verdict

NOT_AVAILABLE = "is not available in this sandbox"  # the sandbox's message (solver_sandbox.hooks)
NO_SOLUTION = ("infeasible", "unbounded", "infeasible_or_unbounded")


@dataclass(frozen=True)
class CheckSpec:
    """One check as data: whether it runs, the flaw type it names, its hint template (Python
    ``str.format`` fields, filled from the finding's evidence)."""

    name: str
    flaw_type: str
    hint: str
    description: str
    enabled: bool = True


DEFAULT_CHECKS: dict[str, CheckSpec] = {
    spec.name: spec
    for spec in (
        CheckSpec(
            "answer_after_failure", "broken_code",
            "Wait, my code above failed with `{error}`, so the solver has not answered and "
            "I have no result to state yet. Let me fix that error and run the whole model "
            "again.\n```python\n",
            "An answer stated after a code cell failed, with no optimal solve after it.",
        ),
        CheckSpec(
            "answer_differs_from_solver", "code_result_distrust",
            "Wait, the solver returned an optimal objective of {objective}, but I was about "
            "to state {answer}. I should trust the solver's result.",
            "A stated answer that differs from the last optimal solve's objective beyond the "
            "answer rule's tolerance.",
        ),
        CheckSpec(
            "answer_despite_no_solution", "code_result_distrust",
            "Wait, the solver said the model is {termination}, so there is no optimal value "
            "to state. Either the problem has no optimal solution or a constraint of my "
            "model is wrong; let me check each constraint against the problem.",
            "A value stated as the answer when the last solve was infeasible or unbounded.",
        ),
        CheckSpec(
            "no_solver_call", "manual_computation",
            "Wait, {no_solve}, so this answer is worked out by hand. It looks tedious, and we "
            "can use python code: let me write the model in Pyomo and solve it with HiGHS.\n"
            "```python\n",
            "An answer stated with no solver call at all.",
        ),
        CheckSpec(
            "continuous_where_integer", "variable_domain",
            "Wait, the problem says \"{integer_words}\", but {domain_evidence}. I should "
            "declare those variables as integers (pyo.NonNegativeIntegers) and solve again.\n"
            "```python\n",
            "Variables declared continuous, or fractional values, where the problem counts "
            "whole units.",
        ),
        CheckSpec(
            "unavailable_solver", "broken_code",
            "Wait, {library} is not available here (`{error}`). I should write the model with "
            "Pyomo and solve it with pyo.SolverFactory('appsi_highs').\n```python\n",
            "A solver or library the sandbox does not have.",
        ),
        CheckSpec(
            "repetition", "repeated_failing_code",
            "Wait, I ran the same code {times} times and it failed the same way each time "
            "(`{error}`). Let me read that error and fix that line first.",
            "The trajectory was stopped for running the same failing code again and again.",
        ),
    )
}  # fmt: skip


def check_specs(overrides: dict[str, Any] | None = None) -> dict[str, CheckSpec]:
    """The defaults with an endpoint's overrides applied (``{name: {enabled, hint,
    flaw_type}}``); an unknown check name or field is an error, said plainly."""
    specs = dict(DEFAULT_CHECKS)
    for name, change in (overrides or {}).items():
        if name not in specs:
            raise ValueError(f"unknown check {name!r}; the checks are {', '.join(specs)}")
        if isinstance(change, bool):
            change = {"enabled": change}
        if not isinstance(change, dict):
            raise ValueError(f"check {name!r}: expected an object such as {{'enabled': false}}")
        unknown = set(change) - {"enabled", "hint", "flaw_type"}
        if unknown:
            raise ValueError(f"check {name!r}: unknown field(s) {', '.join(sorted(unknown))}")
        spec = specs[name]
        specs[name] = CheckSpec(
            name=name,
            flaw_type=str(change.get("flaw_type") or spec.flaw_type),
            hint=str(change.get("hint") or spec.hint),
            description=spec.description,
            enabled=bool(change.get("enabled", spec.enabled)),
        )
    return specs


@dataclass
class Finding:
    """What one check found: the flaw type, the step where the hint goes, the evidence (a
    sentence for people and for the Intervener's prompt), the filled hint, and the values the
    hint was filled from."""

    check: str
    flaw_type: str
    step: int
    evidence: str
    hint: str
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**data)


@dataclass
class Record:
    """What the checks read: the problem text, the steps (with their sandbox results), the
    stated answer and how the trajectory ended, and the answer rule that judges a match."""

    problem: str
    steps: Sequence[Step]
    answer: FinalAnswer | None
    finish_reason: str = ""
    rule: str = "relative"
    tolerance: float | None = None

    @property
    def stated(self) -> bool:
        """Whether the model itself stated an answer (one credited from the sandbox is not)."""
        return self.answer is not None and self.answer.source != "sandbox"

    @property
    def answer_step(self) -> int:
        """The step that states the answer: the final step (the last one)."""
        return len(self.steps) - 1

    def executed(self) -> list[Step]:
        """The code steps whose code ran (not those past the code-call cap)."""
        return [
            s for s in self.steps
            if s.code is not None and (s.result or {}).get("status") not in (None, "not_run")
        ]  # fmt: skip


# --- reading the record -------------------------------------------------------------------------


def error_line(step: Step) -> str:
    """The last line of a failed cell's traceback, else its status."""
    result = step.result or {}
    for text in (result.get("stderr"), step.output):
        lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
        if lines:
            return lines[-1][:200]
    err = result.get("error") or {}
    if err:
        return f"{err.get('type', 'Error')}: {err.get('message', '')}"[:200]
    return str(result.get("status"))


def failed(step: Step) -> bool:
    """The cell's own code failed (a sandbox that failed to run it is not the model's flaw)."""
    from .sandbox import is_infrastructure_failure

    result = step.result or {}
    if result.get("status") in (None, "ok", "not_run"):
        return False
    return not is_infrastructure_failure(result)


def own_solves(steps: Sequence[Step]) -> dict[int, list[dict[str, Any]]]:
    """The solves each step's own cell made. The sandbox replays the earlier cells before a
    cell and records their solves again under their own cell numbers; a step's own cell is
    numbered after the cells replayed before it (``branching.is_replayed``)."""
    from .branching import is_replayed

    out: dict[int, list[dict[str, Any]]] = {}
    replayed = 0
    for step in steps:
        if step.code is None:
            continue
        result = step.result or {}
        records = result.get("solves") or []
        if "solves" not in result and result.get("solver_status"):
            # A result kept without its solve records: its summary stands for one solve.
            records = [
                {"termination": result["solver_status"], "objective": result.get("objective")}
            ]
        out[step.index] = [s for s in records if s.get("cell", replayed) == replayed]
        if step.code and is_replayed(step.result):
            replayed += 1
    return out


def last_solve(record: Record) -> tuple[Step, dict[str, Any]] | None:
    """The last solve and its step."""
    made = own_solves(record.steps)
    for step in reversed(list(record.steps)):
        if made.get(step.index):
            return step, made[step.index][-1]
    return None


def last_optimal(record: Record, after: int = -1) -> tuple[Step, float] | None:
    """The last optimal solve's step and objective (only in steps after ``after``)."""
    made = own_solves(record.steps)
    for step in reversed(list(record.steps)):
        if step.index <= after:
            break
        for solve in reversed(made.get(step.index, [])):
            objective = solve.get("objective")
            if solve.get("termination") == "optimal" and _finite(objective):
                return step, float(objective)
    return None


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def fmt(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.6g}"


def _after(record: Record, step: Step) -> int:
    """The step where a hint about ``step``'s output goes: the next one (the last one when
    ``step`` is the last)."""
    return min(step.index + 1, record.answer_step)


# --- the checks -------------------------------------------------------------------------------


def answer_after_failure(record: Record) -> dict[str, Any] | None:
    if not record.stated:
        return None
    fails = [s for s in record.executed() if failed(s)]
    if not fails:
        return None
    last_fail = fails[-1]
    if last_optimal(record, after=last_fail.index) is not None:
        return None
    last = last_solve(record)
    if last and last[0].index >= last_fail.index and last[1].get("termination") in NO_SOLUTION:
        return None  # the solver answered "infeasible" (Pyomo raises on loading no solution)
    # A value the solver did return before the failure is stated: no flaw of this kind.
    optimal = last_optimal(record)
    if optimal is not None and _matches(record, optimal[1]):
        return None
    return {
        "step": record.answer_step,
        "evidence": f"Step {last_fail.index}'s code failed ({error_line(last_fail)}) and no "
        f"optimal solve came after it, yet the answer {record.answer.text!r} is stated.",
        "failed_step": last_fail.index,
        "error": error_line(last_fail),
    }


def answer_differs_from_solver(record: Record) -> dict[str, Any] | None:
    if not record.stated:
        return None
    last = last_solve(record)
    if last is None or last[1].get("termination") in NO_SOLUTION:
        return None
    optimal = last_optimal(record)
    if optimal is None or _matches(record, optimal[1]):
        return None
    step, objective = optimal
    return {
        "step": record.answer_step,
        "evidence": f"The last optimal solve (step {step.index}) returned objective "
        f"{fmt(objective)}; the stated answer {record.answer.text!r} differs beyond the "
        f"answer rule ({record.rule}).",
        "objective": fmt(objective),
        "solve_step": step.index,
        "answer": record.answer.text,
    }


def answer_despite_no_solution(record: Record) -> dict[str, Any] | None:
    if not record.stated or record.answer.kind != "value":
        return None
    last = last_solve(record)
    if last is None or last[1].get("termination") not in NO_SOLUTION:
        return None
    step, solve = last
    termination = str(solve["termination"]).replace("_", " or ")
    return {
        "step": record.answer_step,
        "evidence": f"The last solve (step {step.index}) ended {termination}, yet the value "
        f"{record.answer.text!r} is stated as the optimum.",
        "termination": termination,
        "solve_step": step.index,
    }


def no_solver_call(record: Record) -> dict[str, Any] | None:
    if not record.stated or record.answer.kind != "value":
        return None
    if any(own_solves(record.steps).values()):
        return None
    ran = record.executed()
    no_solve = (
        "I have not run any code"
        if not ran
        else f"none of my {len(ran)} code cell(s) called a solver"
    )
    return {
        "step": record.answer_step,
        "evidence": (
            "No code was run" if not ran else f"{len(ran)} code cell(s) ran, none called a solver"
        )
        + f", yet the answer {record.answer.text!r} is stated.",
        "no_solve": no_solve,
    }


_INTEGER_WORDS = re.compile(
    r"\b(?:integers?|integral|(?:only|be|in)\s+whole|whole\s+(?:numbers?|units?)|"
    r"indivisible|cannot\s+be\s+(?:split|divided|fractional)|fractions?\s+of\s+an?\s+\w+\s+"
    r"(?:is|are)\s+not)\b|整数",
    re.IGNORECASE,
)
_VAR_DECL = re.compile(r"(?:model|m)\.(\w+)\s*=\s*(?:pyo\.|pe\.|aml\.)?Var\(([^\n]*)")
_INTEGER_DOMAIN = re.compile(
    r"Integers|Binary|Boolean|LpInteger|LpBinary|cat\s*=\s*['\"](?:Integer|Binary)|"
    r"integrality|vtype|domain\s*=\s*int",
)
_CONTINUOUS_DOMAIN = re.compile(r"Reals|PercentFraction|UnitInterval|LpContinuous")
_PRINTED_VALUE = re.compile(r"^\s*([A-Za-z_][\w\[\]\(\), ']{0,40}?)\s*[=:]\s*(-?\d+\.\d+)\s*$")
_OBJECTIVE_LINE = re.compile(r"objective|profit|cost|revenue|total|value", re.IGNORECASE)


def continuous_where_integer(record: Record) -> dict[str, Any] | None:
    words = _INTEGER_WORDS.search(record.problem or "")
    optimal = last_optimal(record)
    if words is None or optimal is None:
        return None
    step = optimal[0]
    code = "\n".join(s.code or "" for s in record.steps if s.index <= step.index)
    declared = _VAR_DECL.findall(code)
    continuous = [name for name, args in declared if _continuous(args)]
    integer = [name for name, args in declared if _INTEGER_DOMAIN.search(args)]
    fractional = []
    for line in (step.output or "").splitlines():
        m = _PRINTED_VALUE.match(line)
        if m and not _OBJECTIVE_LINE.search(m.group(1)):
            value = float(m.group(2))
            if abs(value - round(value)) > 1e-6:
                fractional.append(f"{m.group(1).strip()} = {m.group(2)}")
    if integer and not fractional:
        return None  # the model declared integers: its domain choice is the LLM's to judge
    if not continuous and not fractional:
        return None
    parts = []
    if continuous:
        parts.append(f"I declared {', '.join('model.' + n for n in continuous[:3])} as continuous")
    if fractional:
        parts.append(f"the solver gave {', '.join(fractional[:3])}")
    domain_evidence = " and ".join(parts)
    return {
        "step": _after(record, step),
        "evidence": f'The problem says "{words.group(0)}"; in step {step.index} '
        + domain_evidence.replace("I declared", "the code declares")
        + ".",
        "integer_words": words.group(0),
        "domain_evidence": domain_evidence,
        "solve_step": step.index,
    }


def _continuous(args: str) -> bool:
    """A ``Var(...)`` declaration that is continuous: a real domain, or no domain at all."""
    if _INTEGER_DOMAIN.search(args):
        return False
    return bool(_CONTINUOUS_DOMAIN.search(args)) or ("within" not in args and "domain" not in args)


_LIBRARY = re.compile(r"(?:Solver\s+'?([\w.]+)'?|([\w.]+))\s+is not available in this sandbox")


def unavailable_solver(record: Record) -> dict[str, Any] | None:
    for step in record.executed():
        text = "\n".join(
            filter(None, [(step.result or {}).get("stderr"), step.output,
                          str((step.result or {}).get("error") or "")])
        )  # fmt: skip
        if NOT_AVAILABLE not in text or last_optimal(record, after=step.index) is not None:
            continue  # (an optimal solve after it: the model already turned to HiGHS)
        line = next(ln.strip() for ln in text.splitlines() if NOT_AVAILABLE in ln)
        m = _LIBRARY.search(line)
        library = (m.group(1) or m.group(2)) if m else "that solver"
        error = line[:200]
        return {
            "step": _after(record, step),
            "evidence": f"Step {step.index}'s code asked for {library}, which the sandbox "
            f"does not have: {error}",
            "library": library,
            "error": error,
            "failed_step": step.index,
        }
    return None


def repetition(record: Record) -> dict[str, Any] | None:
    if record.finish_reason != "repetition":
        return None
    from .rollout import normalise_code

    ran = record.executed()
    if not ran or not failed(ran[-1]):
        return None
    key = normalise_code(ran[-1].code or "")
    first = ran[-1]
    for step in reversed(ran[:-1]):
        if not failed(step) or normalise_code(step.code or "") != key:
            break
        first = step
    times = ran[-1].index - first.index + 1
    return {
        "step": _after(record, first),
        "evidence": f"The same failing code ran {times} times in a row from step {first.index} "
        f"({error_line(ran[-1])}); the trajectory was stopped.",
        "times": times,
        "error": error_line(ran[-1]),
        "first_step": first.index,
    }


CHECKS: dict[str, Callable[[Record], dict[str, Any] | None]] = {
    "answer_after_failure": answer_after_failure,
    "answer_differs_from_solver": answer_differs_from_solver,
    "answer_despite_no_solution": answer_despite_no_solution,
    "no_solver_call": no_solver_call,
    "continuous_where_integer": continuous_where_integer,
    "unavailable_solver": unavailable_solver,
    "repetition": repetition,
}


def _matches(record: Record, objective: float) -> bool:
    from .answer_rules import judge_text

    try:
        return judge_text(record.rule, record.answer, objective, tolerance=record.tolerance).correct
    except (KeyError, ValueError):
        return judge_text("relative", record.answer, objective).correct


def run_checks(
    record: Record,
    *,
    specs: dict[str, CheckSpec] | None = None,
    flaw_codes: Sequence[str] | None = None,
) -> list[Finding]:
    """Every enabled check on ``record``, its findings in step order (at one step, in the
    order of the checks). ``flaw_codes``: the active taxonomy; a check whose flaw type is not
    in it stays quiet."""
    specs = specs if specs is not None else DEFAULT_CHECKS
    findings = []
    order = list(CHECKS)
    if not record.steps or record.finish_reason == "infrastructure":
        return []  # the sandbox failed: nothing in the record is the model's doing
    for name, check in CHECKS.items():
        spec = specs.get(name)
        if spec is None or not spec.enabled:
            continue
        if flaw_codes is not None and spec.flaw_type not in flaw_codes:
            continue
        found = check(record)
        if found is None:
            continue
        step = found.pop("step")
        evidence = found.pop("evidence")
        values = {k: v for k, v in found.items()}
        try:
            hint = spec.hint.format(**values)
        except (KeyError, IndexError, ValueError):  # an edited template naming an unknown field
            hint = DEFAULT_CHECKS[name].hint.format(**values)
        findings.append(Finding(check=name, flaw_type=spec.flaw_type, step=step,
                                evidence=evidence, hint=hint, values=values))  # fmt: skip
    findings.sort(key=lambda f: (f.step, order.index(f.check)))
    return findings


def earliest(findings: Sequence[Finding]) -> Finding | None:
    """The finding at the earliest step (at one step, the first check in order)."""
    return min(findings, key=lambda f: f.step) if findings else None


MODES = ("both", "checks", "llm")


def verdict_from(finding: Finding | None, *, raw: str = "") -> Verdict:
    """The verdict a finding makes (none: flawless as far as the checks can see)."""
    if finding is None:
        return Verdict(flawless=True, rationale="No check over the execution record fired.",
                       raw=raw, source="checks")  # fmt: skip
    return Verdict(
        flawless=False, step=finding.step, flaw_type=finding.flaw_type, hint=finding.hint,
        rationale=finding.evidence, raw=raw, source="checks", check=finding.check,
    )  # fmt: skip


def combine(verdict: Verdict | None, findings: Sequence[Finding], mode: str = "both") -> Verdict:
    """The one verdict of a trajectory from the LLM's and the checks'.

    ``mode``: "llm" (the LLM's verdict as it is), "checks" (the earliest finding, or flawless
    when none fired; no LLM is asked) or "both": the earliest finding wins when the LLM names
    no flaw, a later step than the finding's, or gave no valid verdict; otherwise the LLM's
    verdict stands (it found an earlier flaw, or the same step). The verdict's ``source``
    says which part made it; the LLM's raw answer is kept either way."""
    if mode not in MODES:
        raise ValueError(f"unknown Intervener mode {mode!r}: one of {', '.join(MODES)}")
    first = earliest(findings)
    told = [f.to_dict() for f in findings]
    if mode == "checks":
        out = verdict_from(first)
    elif verdict is None:
        raise ValueError(f"mode {mode!r} needs the LLM's verdict")
    elif mode == "llm" or first is None:
        out = verdict
    else:
        llm_step = None if verdict.error or verdict.flawless else verdict.step
        if llm_step is not None and llm_step <= first.step:
            out = verdict
        else:
            out = verdict_from(first, raw=verdict.raw)
            out.attempts = verdict.attempts
            if verdict.error:
                out.rationale += f" (the LLM gave no valid verdict: {verdict.error})"
            elif llm_step is not None:
                out.rationale += f" (the LLM named step {llm_step}, `{verdict.flaw_type}`, later)"
            else:
                out.rationale += " (the LLM judged it flawless)"
    out.findings = told
    return out
