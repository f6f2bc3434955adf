"""Token ids with a tag per token: who wrote each token of a trajectory."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from enum import IntEnum


class Tag(IntEnum):
    """Who produced a token. Stored as one byte per token."""

    PROMPT = 0
    MODEL = 1
    INTERPRETER = 2
    HINT = 3


_MAGIC = b"TT1"


class TaggedTokens:
    """A list of token ids and a parallel list of ``Tag``s (always the same length)."""

    __slots__ = ("ids", "tags")

    def __init__(self, ids: Iterable[int] = (), tags: Iterable[int] | Tag | None = None):
        self.ids: list[int] = [int(i) for i in ids]
        if tags is None:
            tags = Tag.MODEL
        if isinstance(tags, Tag):
            self.tags: list[Tag] = [tags] * len(self.ids)
        else:
            self.tags = [Tag(t) for t in tags]
        if len(self.tags) != len(self.ids):
            raise ValueError(f"{len(self.ids)} ids but {len(self.tags)} tags")

    # --- building -------------------------------------------------------------------------

    def append(self, token_id: int, tag: Tag) -> None:
        self.ids.append(int(token_id))
        self.tags.append(Tag(tag))

    def extend(self, ids: Iterable[int] | TaggedTokens, tag: Tag | None = None) -> None:
        """Append ``ids`` with one ``tag``, or another ``TaggedTokens`` with its own tags."""
        if isinstance(ids, TaggedTokens):
            if tag is not None:
                raise ValueError("a TaggedTokens brings its own tags")
            self.ids.extend(ids.ids)
            self.tags.extend(ids.tags)
            return
        if tag is None:
            raise ValueError("extend(ids, tag): a tag is required for plain ids")
        new = [int(i) for i in ids]
        self.ids.extend(new)
        self.tags.extend([Tag(tag)] * len(new))

    @classmethod
    def prompt(cls, ids: Iterable[int]) -> TaggedTokens:
        """Prompt ids, all tagged PROMPT."""
        return cls(ids, Tag.PROMPT)

    def copy(self) -> TaggedTokens:
        out = TaggedTokens()
        out.ids = list(self.ids)
        out.tags = list(self.tags)
        return out

    # --- reading --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[tuple[int, Tag]]:
        return iter(zip(self.ids, self.tags, strict=True))

    def __getitem__(self, index: slice) -> TaggedTokens:
        if not isinstance(index, slice):
            raise TypeError("TaggedTokens supports slices only; use .ids[i] / .tags[i]")
        out = TaggedTokens()
        out.ids = self.ids[index]
        out.tags = self.tags[index]
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaggedTokens):
            return NotImplemented
        return self.ids == other.ids and self.tags == other.tags

    def __repr__(self) -> str:
        return f"TaggedTokens({len(self)} tokens, {self.counts()})"

    def count(self, tag: Tag) -> int:
        return sum(1 for t in self.tags if t == tag)

    def counts(self) -> dict[str, int]:
        """Tokens per tag, by lower-case tag name (``{"model": 120, "interpreter": 30, ...}``)."""
        out = {tag.name.lower(): 0 for tag in Tag}
        for t in self.tags:
            out[t.name.lower()] += 1
        return out

    def runs(self) -> list[tuple[Tag, int, int]]:
        """Maximal runs of one tag as ``(tag, start, end)``, end exclusive."""
        out: list[tuple[Tag, int, int]] = []
        start = 0
        for i in range(1, len(self.tags) + 1):
            if i == len(self.tags) or self.tags[i] != self.tags[start]:
                if i > start:
                    out.append((self.tags[start], start, i))
                start = i
        return out

    def mask(self, *tags: Tag) -> list[int]:
        """1 where the token's tag is one of ``tags``, else 0 (e.g. TRL's ``env_mask``)."""
        wanted = set(tags)
        return [1 if t in wanted else 0 for t in self.tags]

    # --- storage --------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Compact form for a database column: magic, count, uint32 LE ids, one byte per tag."""
        n = len(self.ids)
        return _MAGIC + struct.pack(f"<I{n}I", n, *self.ids) + bytes(int(t) for t in self.tags)

    @classmethod
    def from_bytes(cls, data: bytes) -> TaggedTokens:
        data = bytes(data)
        if not data.startswith(_MAGIC):
            raise ValueError("not a TaggedTokens blob")
        (n,) = struct.unpack_from("<I", data, len(_MAGIC))
        offset = len(_MAGIC) + 4
        if len(data) != offset + 5 * n:
            raise ValueError(f"blob of {len(data)} bytes does not hold {n} tokens")
        ids = struct.unpack_from(f"<{n}I", data, offset)
        out = cls()
        out.ids = list(ids)
        out.tags = [Tag(b) for b in data[offset + 4 * n :]]
        return out

    def to_dict(self) -> dict[str, list[int]]:
        return {"ids": list(self.ids), "tags": [int(t) for t in self.tags]}

    @classmethod
    def from_dict(cls, data: dict[str, list[int]]) -> TaggedTokens:
        return cls(data["ids"], data["tags"])
