"""What a hint may not do: give the answer away, or run long.

A hint that states the reference value (within the answer rule's tolerance, in any common
number format: 4100, 4,100, 4 100, 4.1e3, 4.1 \\times 10^3, \\frac{8200}{2}) teaches the Reasoner to
copy an answer it was handed, and the golden set trains on that hint by default. The
Intervener's hint is sent back for repair; a person's needs a recorded confirmation.

Hint length is counted in tokens: with the Reasoner's tokenizer where one is at hand (the worker
that continues the trajectory), else as pre-tokens (words, numbers and symbols, the split a
byte-level BPE makes before merging: never more than its tokens, so a hint refused on that count
is certainly too long)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .answer_rules import judge_text
from .answers import _FRAC_RE, _NUMBER_RE, _times_ten

# "4,100" and "4 100" (also with a thin or non-breaking space): one number, as a reader sees it.
_GROUPED_RE = re.compile(r"(?<![\d.])\d{1,3}(?:[,\u202f\u00a0 ]\d{3})+(?![\d])")
_PRETOKEN_RE = re.compile(r"\w+|[^\w\s]+", re.UNICODE)


def stated_numbers(text: str) -> list[tuple[str, float]]:
    """Every number a text states, as (as written, value): plain, grouped thousands, scientific
    (``4.1e3``, ``4.1 \\times 10^3``) and ``\\frac{a}{b}``."""
    s = text.replace("\\,", "").replace("\\!", "").replace("{,}", ",").replace("−", "-")
    found: list[tuple[str, float]] = []
    for m in _FRAC_RE.finditer(s):
        try:
            den = float(m.group(2))
            if den:
                found.append((m.group(0), float(m.group(1)) / den))
        except ValueError:
            pass
    s = _FRAC_RE.sub(" ", s)
    s = _times_ten(s)
    for m in _GROUPED_RE.finditer(s):
        found.append((m.group(0), float(re.sub(r"\D", "", m.group(0)))))
    s = _GROUPED_RE.sub(" ", s)
    # "4100." at the end of a sentence is written "4100"
    found += [(m.group(0).rstrip("."), float(m.group(0))) for m in _NUMBER_RE.finditer(s)]
    return found


def states_reference(
    text: str, reference: float | None, *, rule: str = "relative", tolerance: float | None = None
) -> str | None:
    """The number in ``text`` that states ``reference`` under the answer rule (within its
    tolerance), or None. A problem without an optimal value has no number to give away."""
    if reference is None:
        return None
    for written, value in stated_numbers(text):
        if judge_text(rule, repr(value), reference, tolerance=tolerance).correct:
            return written.strip()
    return None


def count_tokens(text: str, encode: Callable[[str], Sequence[int]] | None = None) -> int:
    """A hint's length in tokens: ``encode``'s (the Reasoner's tokenizer) where given, else
    its pre-tokens (a lower bound of a byte-level BPE's count)."""
    if encode is not None:
        return len(encode(text))
    return len(_PRETOKEN_RE.findall(text))


def leak_message(written: str) -> str:
    return (
        f"the hint states the reference value ({written}): a hint says what to fix, never the "
        "answer"
    )


def length_message(tokens: int, limit: int) -> str:
    return f"the hint is {tokens} tokens long, over the limit of {limit} (CALM_HINT_MAX_TOKENS)"
