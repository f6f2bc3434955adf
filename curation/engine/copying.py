"""Passages a model copied word for word from the words it was sent (its system prompt, the
worked example): a trajectory that recites its prompt has not solved anything, and must not
slip into the golden set unnoticed. Plain Python, no Django.

A passage counts when at least ``min_words`` consecutive words (split on whitespace) of the
model's text also stand consecutively in a source; twelve words is longer than the phrases a
model legitimately shares with its instructions ("solve it with HiGHS", one line of Pyomo), and
shorter than any sentence worth noticing. Linear in the text: one hashed window per word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MIN_WORDS = 12
EXCERPT_CHARS = 160


@dataclass(frozen=True)
class Copied:
    source: str  # the name of the source it was copied from ("the system prompt", ...)
    words: int  # how many consecutive words were copied
    excerpt: str  # the copied words (cut at EXCERPT_CHARS)


def copied_passages(
    text: str, sources: Mapping[str, str], *, min_words: int = MIN_WORDS
) -> list[Copied]:
    """Each maximal run of ``text`` of at least ``min_words`` words found in one of the
    ``sources`` ({name: text}), in the order they occur in ``text``."""
    windows: dict[tuple[str, ...], str] = {}
    for name, source in sources.items():
        words = source.split()
        for i in range(len(words) - min_words + 1):
            windows.setdefault(tuple(words[i : i + min_words]), name)
    words = text.split()
    found: list[Copied] = []
    i = 0
    while i + min_words <= len(words):
        name = windows.get(tuple(words[i : i + min_words]))
        if name is None:
            i += 1
            continue
        end = i + min_words  # extend while the next window still comes from that source
        while end < len(words) and windows.get(tuple(words[end - min_words + 1 : end + 1])) == name:
            end += 1
        excerpt = " ".join(words[i:end])
        if len(excerpt) > EXCERPT_CHARS:
            excerpt = excerpt[: EXCERPT_CHARS - 1] + "…"
        found.append(Copied(source=name, words=end - i, excerpt=excerpt))
        i = end
    return found
