"""Shape stored trajectory data for templates. Model output stays text here; templates render
it through the sanitizing filters, never ``|safe``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

COLLAPSE_CHARS = 1200  # reasoning or output longer than this starts collapsed
STATUS_CLASS = {"ok": "ok", "error": "bad", "timeout": "bad", "harness_error": "bad"}


@dataclass
class StepView:
    index: int
    reasoning: str
    code: str | None
    output: str | None
    result: dict
    has_hint: bool
    labels: list = field(default_factory=list)
    comments: list = field(default_factory=list)
    # What the checks over the execution record found here, not yet decided by a reviewer.
    findings: list = field(default_factory=list)
    # The Intervener's verdicts that name this step as the first flaw (newest first).
    verdicts: list = field(default_factory=list)
    # The viewer's own current flaw type on this step (its pk), preselected in the menu.
    my_flaw_type_id: int | None = None
    # (start, end) character spans of the reasoning that an inserted hint wrote.
    hint_spans: list = field(default_factory=list)

    @property
    def number(self) -> int:
        return self.index + 1

    @property
    def is_final(self) -> bool:
        return self.code is None

    @property
    def long_reasoning(self) -> bool:
        return len(self.reasoning) > COLLAPSE_CHARS

    @property
    def long_output(self) -> bool:
        return len(self.output or "") > COLLAPSE_CHARS

    @property
    def status(self) -> str:
        return str(self.result.get("status") or "")

    @property
    def status_class(self) -> str:
        return STATUS_CLASS.get(self.status, "bad" if self.status else "muted")


def _text(value) -> str:
    # Stored steps come from a model: anything may be there. Show non-text as its repr.
    if value is None:
        return ""
    return value if isinstance(value, str) else repr(value)


def hint_spans(reasoning: str, hint_texts: list[str]) -> list[tuple[int, int]]:
    """Where the hints' text stands in a step's reasoning. A hint's prose only: a hint that
    holds a ```python block has its code in the step's code, not in the reasoning."""
    spans = []
    for text in hint_texts:
        prose = text.split("```", 1)[0].strip()
        at = reasoning.find(prose) if prose else -1
        if at >= 0:
            spans.append((at, at + len(prose)))
    return spans


def step_views(
    steps: list, labels_by_step: dict[int, list] | None = None, hint_texts: list[str] = ()
) -> list[StepView]:
    """One view per stored step; malformed entries become visible error steps, not crashes.
    ``hint_texts``: the hints written into this trajectory (its own and its ancestors'),
    highlighted in the steps that hold a hint."""
    labels_by_step = labels_by_step or {}
    views = []
    for position, raw in enumerate(steps if isinstance(steps, list) else []):
        step = raw if isinstance(raw, dict) else {"reasoning": f"(malformed step: {raw!r})"}
        result = step.get("result") if isinstance(step.get("result"), dict) else {}
        code = step.get("code")
        views.append(
            StepView(
                index=position,
                reasoning=_text(step.get("reasoning")),
                code=None if code is None else _text(code),
                output=None if step.get("output") is None else _text(step.get("output")),
                result=result,
                has_hint=bool(step.get("has_hint")),
                labels=labels_by_step.get(position, []),
            )
        )
        view = views[-1]
        if view.has_hint:
            view.hint_spans = hint_spans(view.reasoning, list(hint_texts))
    return views


def flaw_options(flaw_types) -> dict:
    """The flaw-type <option> lists every step card repeats, built once per page (escaped by
    format_html): a 200-step page would otherwise resolve them 2,800 times in the template."""
    from django.utils.html import format_html, format_html_join

    types = list(flaw_types)
    label = format_html_join(
        "",
        '<option value="{}" data-key="{}">{} · {}</option>',
        ((ft.pk, n, n, ft.name) for n, ft in enumerate(types, start=1)),
    )
    hint = format_html_join(
        "",
        '<option value="{}" data-flaw="{}">{}</option>',
        ((ft.hint_template, ft.pk, ft.name) for ft in types if ft.hint_template),
    )
    return {"label": format_html("{}", label), "hint": format_html("{}", hint)}


_STEP_NUMBER = re.compile(r"\b([Ss]tep) (\d+)\b")


def finding_view(finding) -> dict:
    """A check's finding as the step card shows it: steps numbered from 1, as on the page (the
    evidence is written for the Intervener's prompt, which numbers them from 0)."""
    evidence = _STEP_NUMBER.sub(lambda m: f"{m.group(1)} {int(m.group(2)) + 1}", finding.evidence)
    return {"check": finding.check, "flaw_type": finding.flaw_type, "evidence": evidence,
            "hint": finding.hint}  # fmt: skip
