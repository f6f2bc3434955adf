"""Two trajectories of a problem side by side (parent and branch, siblings, any pair): aligned
at their common prefix, a word-level diff inside differing steps, full outputs, the hints."""

from __future__ import annotations

import difflib
import re

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET

from ..models import Hint, Trajectory
from ..roles import Role, role_required
from .presenters import step_views

_WORDS = re.compile(r"(\s+)")


# Past this many tokens (words and the spaces between them) on either side of the part that
# differs, the diff marks that whole part as changed: difflib's matcher is worse than quadratic on
# repetitive text (2,000 words took minutes), so a GET must not feed it more.
WORD_DIFF_MAX_TOKENS = 400


def word_diff(left: str, right: str) -> tuple[SafeString, SafeString]:
    """Both texts escaped, with the words only on the left in ``<del>`` and the words only on
    the right in ``<ins>`` (whitespace kept, so the text reads as written). The shared start and
    end are trimmed first; a middle longer than ``WORD_DIFF_MAX_TOKENS`` is marked whole."""
    a, b = _WORDS.split(left or ""), _WORDS.split(right or "")
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    mid_a, mid_b = a[start : len(a) - end], b[start : len(b) - end]
    head, tail = escape("".join(a[:start])), escape("".join(a[len(a) - end :]))
    out_left: list[str] = [head]
    out_right: list[str] = [head]
    if max(len(mid_a), len(mid_b)) > WORD_DIFF_MAX_TOKENS:
        opcodes = [("replace", 0, len(mid_a), 0, len(mid_b))]
    else:
        opcodes = difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=False).get_opcodes()
    for op, i1, i2, j1, j2 in opcodes:
        old, new = escape("".join(mid_a[i1:i2])), escape("".join(mid_b[j1:j2]))
        if op == "equal":
            out_left.append(old)
            out_right.append(new)
            continue
        if old:
            out_left.append(f"<del>{old}</del>")
        if new:
            out_right.append(f"<ins>{new}</ins>")
    out_left.append(tail)
    out_right.append(tail)
    return mark_safe("".join(out_left)), mark_safe("".join(out_right))  # noqa: S308 - escaped


def common_prefix(lefts: list, rights: list) -> int:
    """How many leading steps the two trajectories share (same reasoning and code)."""
    shared = 0
    for left, right in zip(lefts, rights, strict=False):
        if (left.reasoning, left.code) != (right.reasoning, right.code):
            break
        shared += 1
    return shared


def _hint(t: Trajectory) -> Hint | None:
    return Hint.objects.select_related("author_user", "author_endpoint").filter(branch=t).first()


@require_GET
@role_required(Role.REVIEWER)
def trajectory_compare(request: HttpRequest, left: int, right: int) -> HttpResponse:
    a = get_object_or_404(Trajectory.objects.select_related("problem__benchmark"), pk=left)
    b = get_object_or_404(Trajectory.objects.select_related("problem__benchmark"), pk=right)
    if a.problem_id != b.problem_id:
        messages.error(request, "Only trajectories of the same problem can be compared.")
        return redirect(a.get_absolute_url())
    lefts, rights = step_views(a.steps), step_views(b.steps)
    shared = common_prefix(lefts, rights)
    longest = max(len(lefts), len(rights))
    branch_at = shared if shared < longest else None
    # Each side's own hint (a branch carries the hint that made it), shown in its step.
    hints = {"left": _hint(a), "right": _hint(b)}
    rows = []
    for i in range(longest):
        left_step = lefts[i] if i < len(lefts) else None
        right_step = rights[i] if i < len(rights) else None
        row = {"index": i, "left": left_step, "right": right_step, "same": i < shared,
               "is_branch": i == branch_at}  # fmt: skip
        if left_step is not None and right_step is not None and i >= shared:
            row["reasoning_diff"] = word_diff(left_step.reasoning, right_step.reasoning)
            row["code_diff"] = word_diff(left_step.code or "", right_step.code or "")
        for side, hint in hints.items():
            row[f"{side}_hint"] = hint if hint is not None and hint.step_index == i else None
        rows.append(row)
    context = {"a": a, "b": b, "rows": rows, "branch_at": branch_at, "shared": shared,
               "hint": hints["right"] or hints["left"]}  # fmt: skip
    return render(request, "curation/trajectory_compare.html", context)
