"""The Intervener: read a trajectory, find its first flaw, name its type, write a hint."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .format import Step
from .prompts import INTERVENER_SYSTEM_PROMPT

DEFAULT_TAXONOMY: list[dict[str, str]] = [
    {"code": "manual_computation", "name": "Manual computation",
     "category": "computation-driven",
     "description": "Does arithmetic or enumerates cases by hand instead of running code or a "
                    "solver."},
    {"code": "delayed_code_use", "name": "Delayed code use", "category": "computation-driven",
     "description": "Reasons at length before finally writing code."},
    {"code": "code_result_distrust", "name": "Code result distrust",
     "category": "computation-driven",
     "description": "Re-checks a correct solver result by hand, or ignores it."},
    {"code": "broken_code", "name": "Fragmented or broken code", "category": "computation-driven",
     "description": "Code that does not run, or pieces that never form a whole model."},
    {"code": "incorrect_formulation", "name": "Incorrect formulation",
     "category": "domain knowledge",
     "description": "Wrong objective, wrong decision variables, or the wrong optimization "
                    "sense."},
    {"code": "constraint_error", "name": "Missing or wrong constraint",
     "category": "domain knowledge",
     "description": "A constraint of the problem is left out or stated wrongly."},
    {"code": "variable_domain", "name": "Wrong variable domain", "category": "domain knowledge",
     "description": "LP where integers are needed, or the reverse; wrong bounds or signs."},
    {"code": "repeated_failing_code", "name": "Repeated failing code",
     "category": "computation-driven",
     "description": "Runs the same failing code again and again without fixing the error."},
]  # fmt: skip

# Template hints reviewers can pick from, in the Reasoner's own voice (CoRT's wording for the
# computation-driven ones; the domain ones are starting points to adapt to the problem).
HINT_TEMPLATES: dict[str, str] = {
    "manual_computation": "It looks tedious, and we can use python code to simplify the "
    "reasoning.\n```python\n",
    "delayed_code_use": "I have reasoned enough; let me write the model in Pyomo and solve it "
    "with HiGHS now.\n```python\n",
    "code_result_distrust": "We don't need to doubt the accuracy of python calculations.",
    "broken_code": "Wait, the code above does not run as one model; let me write it again as "
    "one complete Pyomo model and solve it.\n```python\n",
    "incorrect_formulation": "Wait, let me re-read the problem: the objective and the decision "
    "variables should be defined as the problem states.",
    "constraint_error": "Wait, I have not included every constraint the problem states; let me "
    "list them again and add the missing one.",
    "variable_domain": "Wait, these quantities must be integers; I should declare the variables "
    "as integers and re-solve.",
    "repeated_failing_code": "Wait, I keep running the same code and it fails the same way; let "
    "me read the error and fix that line first.",
}

SYSTEM_PROMPT = INTERVENER_SYSTEM_PROMPT


@dataclass
class Verdict:
    """The Intervener's reading of a trajectory. ``error`` is set (and ``raw`` kept) when no
    valid verdict could be had; then the other fields are not to be trusted."""

    flawless: bool = False
    step: int | None = None
    flaw_type: str | None = None
    hint: str | None = None
    rationale: str = ""
    raw: str = ""
    error: str | None = None
    attempts: int = 1
    # The first wrong sentence of the flawed step, as the Intervener quoted it: the automated
    # hint cuts there, keeping the correct part of the step (``quote_offset``).
    quote: str | None = None
    # Which part made the verdict: "llm" (the Intervener model) or "checks" (a check over the
    # execution record, ``check`` naming it).
    source: str = "llm"
    check: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)  # the checks' (as dicts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Facts:
    """What the system checked itself and tells the Intervener (a small model cannot redo it):
    the answer the trajectory stated, the reference (curation only; never in evaluation), how
    the trajectory ended."""

    answer: str | None = None
    reference: str | None = None
    correct: bool | None = None
    finish_reason: str = ""
    # What the checks over the execution record found (``checks.Finding``), told as facts.
    findings: Sequence[Any] = ()

    def lines(self, steps: Sequence[Step]) -> list[str]:
        out = [f"- Final answer stated in \\boxed{{}}: {self.answer or 'none'}."]
        if self.reference is not None:
            out.append(f"- Reference optimal objective value: {self.reference}.")
            # Only a wrong answer is pointed out (it helps find the flaw). A matching one is not
            # announced: the flawless verdict is about the reasoning, and telling the
            # Intervener "it matches" primed it to call correct trajectories flawless.
            if self.correct is False:
                out.append(
                    "- The stated answer does NOT match the reference: the trajectory has a flaw."
                )
        for s in steps:
            if s.code is not None and _failed(s):
                out.append(f"- Step {s.index}'s code failed: {_error_line(s)}")
        if self.finish_reason == "repetition":
            out.append("- It stopped because it ran the same failing code several times.")
        elif self.finish_reason == "budget":
            out.append("- It ran out of its token budget before finishing.")
        for finding in self.findings:
            out.append(
                f"- Checked from the execution record, at step {finding.step} "
                f"(`{finding.flaw_type}`): {finding.evidence}"
            )
        return out

    def task(self) -> str:
        """The first lines of the task, where the facts decide most of it."""
        if self.findings:
            first = min(f.step for f in self.findings)
            return (
                f"The execution record proves a flaw at step {first}: the trajectory is not "
                f"flawless. Name the first flaw: at step {first}, or at an earlier step whose "
                "reasoning or model is already wrong.\n"
            )
        if self.correct is True:
            # Not "flawless unless ...": a right answer reached by hand arithmetic, by
            # distrusting the solver or by delaying code is still flawed (the flaws SFT removes).
            return (
                "Judge the reasoning itself, step by step: a right final answer does not make a "
                "trajectory flawless. Check every step for each flaw type above.\n"
            )
        if self.correct is False:
            return (
                "The stated answer is wrong or missing, so some step has a flaw: find the "
                "first step where the reasoning or the code goes wrong.\n"
            )
        return ""


def _error_line(step: Step) -> str:
    """The last line of a failed cell's traceback (or its status)."""
    result = step.result or {}
    for text in (result.get("stderr"), step.output):
        lines = [line for line in (text or "").strip().splitlines() if line.strip()]
        if lines:
            return lines[-1].strip()[:200]
    return str(result.get("status"))


def _failed(step: Step) -> bool:
    status = (step.result or {}).get("status")
    return status not in (None, "ok")


# The example answers show the shape, not content: the flawed one is a template with
# placeholders. With a concrete example (a store-demand hint), Qwen2.5-Coder-1.5B copied its hint
# and rationale word for word onto unrelated problems (seen in the loop bench and in a batch of
# the make run trial), and such a hint is refused, so the item ended as an error.
FLAWLESS_EXAMPLE = (
    '{"flawless": true, "step": null, "flaw_type": null, "hint": null, "rationale": "One '
    'complete model, the solver answered optimal and the stated answer matches."}'
)
EXAMPLE_HINT = "Wait, <what is wrong in step 2, and what to do instead>"
FLAWED_EXAMPLE = (
    '{"flawless": false, "step": 2, "flaw_type": "<the code of its flaw type>", '
    f'"hint": "{EXAMPLE_HINT}", "quote": "<the first wrong sentence of step 2, copied>", '
    '"rationale": "<why, for a human reviewer>"}'
)
EXAMPLE_VERDICTS = f"{FLAWLESS_EXAMPLE}\n{FLAWED_EXAMPLE}"
_PLACEHOLDER_RE = re.compile(r"<[a-z][a-z0-9 ,']{8,}>")


def copies_the_example(hint: str) -> bool:
    """True when a hint is (or still holds) the template's placeholder text."""
    return bool(_PLACEHOLDER_RE.search(hint))


def build_prompt(
    problem: str,
    steps: Sequence[Step],
    taxonomy: Sequence[dict[str, Any]],
    *,
    facts: Facts | None = None,
    hint_templates: dict[str, str] | None = None,
) -> str:
    """The user message. What is the same for every trajectory comes first (flaw types with an
    example hint each, the JSON contract, example verdicts), so a server's prefix cache reuses
    it from one diagnosis to the next; then the problem, the facts the system checked, the
    numbered steps, and the task."""
    templates = {**HINT_TEMPLATES, **(hint_templates or {})}
    types = "\n".join(
        f"- `{t['code']}` ({t.get('category', '')}): {t.get('name', '')}. "
        f"{t.get('description', '')}"
        + (f' Example hint: "{_one_line(templates[t["code"]])}"' if t["code"] in templates else "")
        for t in taxonomy
    )
    parts = []
    for step in steps:
        block = [f"### Step {step.index}", step.reasoning.strip() or "(no reasoning)"]
        if step.code is not None:
            block += ["```python", step.code.rstrip(), "```"]
            block += ["```output", (step.output or "").rstrip(), "```"]
        parts.append("\n".join(block))
    checked = "\n".join(facts.lines(steps)) if facts else ""
    return (
        "You will read a student's trajectory and find its FIRST flaw, if any.\n\n"
        f"## Flaw types\n{types}\n\n"
        "## Answer format\n"
        "Answer with one JSON object only:\n"
        '{"flawless": true|false, "step": <step number or null>, "flaw_type": <a flaw type '
        'code or null>, "hint": <string or null>, "rationale": <string>}\n'
        "- flawless: true only if no step has any of the flaws above; then step, flaw_type and "
        "hint are null. A trajectory whose answer does not match the reference, or that has no "
        "answer, is never flawless.\n"
        "- step: the number of the step where the first flaw occurs (steps are numbered from "
        "0).\n"
        "- hint: one or two short sentences inserted at that step, written in the solver's own "
        "first-person voice, that say what to fix. Do not give away the final answer.\n"
        "- quote: optional, the first wrong sentence of that step copied exactly (the hint then "
        "goes just before it, keeping the correct part of the step), or null.\n"
        "- rationale: why, briefly, for a human reviewer.\n"
        "Two example answers (the second is a template: replace every <...> with what this "
        f"trajectory needs):\n{EXAMPLE_VERDICTS}\n\n"
        f"## Problem\n{problem.strip()}\n\n"
        + (f"## Facts checked by the system\n{checked}\n\n" if checked else "")
        + f"## Trajectory ({len(steps)} steps, numbered 0 to {len(steps) - 1})\n\n"
        + "\n\n".join(parts)
        + "\n\n## Your task\n"
        + (facts.task() if facts else "")
        + "Find the FIRST flaw, if any, and answer with the JSON object only."
    )


def parse_verdict(text: str, *, n_steps: int, flaw_codes: Sequence[str]) -> Verdict:
    """Parse and validate a verdict; raises ``ValueError`` saying what is wrong."""
    data = _extract_json(text)
    if not isinstance(data, dict):
        raise ValueError("the answer must be one JSON object")
    flawless = data.get("flawless")
    if not isinstance(flawless, bool):
        raise ValueError('"flawless" must be true or false')
    rationale = data.get("rationale") or ""
    if not isinstance(rationale, str):
        raise ValueError('"rationale" must be a string')
    if flawless:
        return Verdict(flawless=True, rationale=rationale, raw=text)
    step = data.get("step")
    if isinstance(step, str) and step.strip().isdecimal():
        step = int(step)
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < n_steps:
        raise ValueError(f'"step" must be a step number from 0 to {n_steps - 1}, got {step!r}')
    flaw = data.get("flaw_type")
    if flaw not in flaw_codes:
        raise ValueError(f'"flaw_type" must be one of {", ".join(flaw_codes)}; got {flaw!r}')
    hint = data.get("hint")
    if not isinstance(hint, str) or not hint.strip():
        raise ValueError('"hint" must be a non-empty string when the trajectory is flawed')
    if re.search(r"oxed\s*\{", hint):  # also "\x08oxed{": a JSON-decoded "\boxed{"
        raise ValueError('"hint" must not state the final answer (no \\boxed{} in a hint)')
    if copies_the_example(hint):
        raise ValueError(
            '"hint" copies the example answer\'s placeholder; write the hint itself: what is '
            "wrong in that step of this trajectory and what to do instead"
        )
    quote = data.get("quote")
    if quote is not None and not isinstance(quote, str):
        raise ValueError('"quote" must be a string or null')
    return Verdict(
        flawless=False, step=step, flaw_type=flaw, hint=hint.strip(), rationale=rationale,
        raw=text, quote=(quote or "").strip()[:500] or None,
    )  # fmt: skip


def quote_offset(reasoning: str, quote: str | None) -> int | None:
    """Where a quoted sentence starts in a step's reasoning (exact, else ignoring case and
    spacing), or None when it is not there."""
    if not quote:
        return None
    at = reasoning.find(quote)
    if at >= 0:
        return at
    # Map a whitespace-collapsed, case-folded search back onto the original characters.
    chars, index = [], []
    for i, ch in enumerate(reasoning):
        if ch.isspace():
            if chars and chars[-1] == " ":
                continue
            ch = " "
        chars.append(ch.lower())
        index.append(i)
    wanted = " ".join(quote.split()).lower()
    at = "".join(chars).find(wanted)
    return index[at] if at >= 0 else None


def _one_line(text: str) -> str:
    return " ".join(text.replace("```python", "").split())


_INVALID_ESCAPE = re.compile(r'\\(?![\\"/bfnrtu])')
# LaTeX commands that begin with a valid JSON escape letter: in a model's JSON, "\boxed" is
# LaTeX, not a backspace followed by "oxed".
_LATEX_ESCAPE = re.compile(
    r"(?<!\\)\\(?=(?:boxed|frac|text|textbf|times|theta|tau|right|rightarrow|rho|neq|nabla|nu|"
    r"beta|bar|bf|forall|top|ne)\b)"
)


def _extract_json(text: str) -> Any:
    """The JSON object in a reply: tolerates <think> blocks, ```json fences and prose around."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL).strip()
    fenced = re.findall(r"```(?:json)?\s*\n(.*?)```", text, flags=re.DOTALL)
    candidates = [*fenced, text]
    # Models write LaTeX inside JSON strings: keep "\boxed", "\frac", "\text" as written.
    candidates = [_LATEX_ESCAPE.sub(r"\\\\", c) for c in candidates] + candidates
    # Models write LaTeX inside JSON strings ("\(70x\)"): invalid escapes. A second pass
    # doubles every backslash that does not start a valid JSON escape.
    candidates += [_INVALID_ESCAPE.sub(r"\\\\", c) for c in candidates]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        candidate = candidate.strip()
        try:
            return json.loads(candidate)
        except ValueError:
            pass
        for m in re.finditer(r"\{", candidate):  # the first object that parses, prose around
            try:
                obj, _ = decoder.raw_decode(candidate[m.start() :])
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    raise ValueError("no JSON object found in the answer")


def diagnose(
    backend: Any,
    *,
    problem: str,
    steps: list[Step],
    taxonomy: list[dict[str, Any]],
    max_repairs: int = 1,
    facts: Facts | None = None,
    system_prompt: str | None = None,
    hint_templates: dict[str, str] | None = None,
    hint_check: Callable[[str], str | None] | None = None,
    **sampling: Any,
) -> Verdict:
    """Ask the Intervener (``backend.chat``) for the first flaw of a trajectory.

    ``hint_check(hint)`` says what is wrong with a hint (it states the reference value, it is
    too long; see ``hint_checks``) or None: such a verdict is sent back for repair like a
    malformed one.

    The answer must be a JSON verdict (``flawless``, ``step``, ``flaw_type``, ``hint``,
    ``rationale``); when it is malformed or invalid, up to ``max_repairs`` repair requests
    quote the error. A verdict that stays invalid, or a backend failure, comes back with
    ``error`` set and the raw text kept; this function does not raise for either.
    """
    codes = [t["code"] for t in taxonomy]
    prompt = build_prompt(problem, steps, taxonomy, facts=facts, hint_templates=hint_templates)
    messages = [
        {"role": "system", "content": system_prompt or SYSTEM_PROMPT},
        {"role": "user", "content": prompt},
    ]
    raws: list[str] = []
    error = ""
    for attempt in range(max_repairs + 1):
        try:
            raw = backend.chat(messages, **sampling)
        except Exception as exc:  # the endpoint failed after its retries: a result, not a crash
            return Verdict(raw="\n\n".join(raws), error=f"{type(exc).__name__}: {exc}",
                           attempts=attempt + 1)  # fmt: skip
        raws.append(raw)
        try:
            verdict = parse_verdict(raw, n_steps=len(steps), flaw_codes=codes)
            if verdict.flawless and facts is not None and facts.correct is False:
                raise ValueError(
                    "the stated answer does not match the reference, so the trajectory is not "
                    "flawless: name the step of its first flaw"
                )
            problem_with_hint = hint_check(verdict.hint) if hint_check and verdict.hint else None
            if problem_with_hint:
                raise ValueError(problem_with_hint)
        except (ValueError, RecursionError) as exc:
            # json.loads raises RecursionError, not ValueError, on a deeply nested answer.
            error = str(exc) if isinstance(exc, ValueError) else "the JSON is nested too deeply"
            messages = [
                *messages,
                {"role": "assistant", "content": raw},
                {"role": "user", "content": (
                    f"Your answer could not be used: {error}. Answer again with only the JSON "
                    "object, following the format above."
                )},
            ]  # fmt: skip
            continue
        verdict.attempts = attempt + 1
        return verdict
    return Verdict(raw="\n\n".join(raws), error=f"invalid verdict: {error}",
                   attempts=max_repairs + 1)  # fmt: skip
