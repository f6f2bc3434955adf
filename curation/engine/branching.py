"""Where a branch leaves its parent: the one rule every caller uses.

A hint at step k (or inside step k's reasoning) cuts the parent's completion at a token offset;
the branch keeps everything before it, replays the earlier code cells in the sandbox before its
own new code, and carries the earlier cells' sandbox results. The single-hint service, the
batch loop and anything else that branches call ``branch_point`` (or ``branch_rollout``), so
the rule is tested once for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .format import Decode, Step, cut_offset
from .prompts import THINK_OPEN
from .tokens import Tag, TaggedTokens

# Cells that hit a hard limit are not replayed as prior cells: a cell that timed out once would
# time out again in front of every later cell. The rollout loop uses the same set.
NOT_REPLAYED = frozenset(
    {"timeout", "cpu_limit", "memory_limit", "output_limit", "killed", "not_run"}
)


def is_replayed(result: dict[str, Any] | None) -> bool:
    """Whether a cell with this sandbox result is replayed before later code (unknown: yes)."""
    return not result or result.get("status") not in NOT_REPLAYED


@dataclass(frozen=True)
class BranchPoint:
    """``offset``: the cut in completion tokens (``completion[:offset]`` is kept);
    ``prior_cells``: the code replayed before the branch's new code, filtered as the original
    rollout filtered it; ``prior_results``: the sandbox result of every code step before the
    cut, aligned with the prefix's output blocks (step k's result is ``prior_results[k]``)."""

    offset: int
    prior_cells: tuple[str, ...]
    prior_results: tuple[dict[str, Any] | None, ...]
    forced: int = 0  # leading tokens the prompt side forced (never cut away)


def forced_prefix_length(completion: TaggedTokens, decode: Decode | None = None) -> int:
    """How many leading completion tokens the prompt side forced (the think prefix): the
    leading PROMPT-tagged run. Trajectories stored before the prefix was tagged PROMPT carry
    it as model tokens; with ``decode``, a leading ``<think>`` (and its newline) is found."""
    n = 0
    while n < len(completion) and completion.tags[n] == Tag.PROMPT:
        n += 1
    if n or decode is None or not completion.ids:
        return n
    for k in range(1, min(4, len(completion)) + 1):
        text = decode(completion.ids[:k])
        if text.startswith(THINK_OPEN) and text[len(THINK_OPEN) :].strip() == "":
            n = k
        elif not THINK_OPEN.startswith(text) and not text.startswith(THINK_OPEN):
            break
    return n


def branch_point(
    completion: TaggedTokens,
    steps: Sequence[Step],
    step_index: int,
    *,
    char_offset: int | None = None,
    decode: Decode | None = None,
) -> BranchPoint:
    """The branch point for a hint before step ``step_index`` (``char_offset`` None) or inside
    its reasoning at ``char_offset`` (needs ``decode``). Raises IndexError for a step that does
    not exist."""
    if not 0 <= step_index < len(steps):
        raise IndexError(f"step {step_index} out of range (0..{len(steps) - 1})")
    if char_offset is None:
        offset = steps[step_index].token_start
    else:
        if decode is None:
            raise ValueError("a cut inside a step needs the tokenizer's decode")
        offset = cut_offset(completion, decode, step_index, char_offset, steps)
    forced = forced_prefix_length(completion, decode)
    offset = max(offset, forced)
    earlier = [s for s in steps[:step_index] if s.code is not None]
    return BranchPoint(
        offset=offset,
        prior_cells=tuple(s.code for s in earlier if s.code and is_replayed(s.result)),
        prior_results=tuple(s.result for s in earlier),
        forced=forced,
    )
