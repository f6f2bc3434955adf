from __future__ import annotations

import pytest

from curation.engine import Tag, TaggedTokens


def test_it_keeps_ids_and_tags_in_step():
    tt = TaggedTokens.prompt([1, 2])
    tt.extend([3, 4, 5], Tag.MODEL)
    tt.append(6, Tag.HINT)
    tt.extend(TaggedTokens([7], Tag.INTERPRETER))
    assert tt.ids == [1, 2, 3, 4, 5, 6, 7]
    assert tt.counts() == {"prompt": 2, "model": 3, "interpreter": 1, "hint": 1}
    assert tt[2:5] == TaggedTokens([3, 4, 5], Tag.MODEL)
    assert tt.runs() == [
        (Tag.PROMPT, 0, 2), (Tag.MODEL, 2, 5), (Tag.HINT, 5, 6), (Tag.INTERPRETER, 6, 7)
    ]  # fmt: skip
    assert tt.mask(Tag.MODEL, Tag.HINT) == [0, 0, 1, 1, 1, 1, 0]


def test_it_round_trips_through_bytes_compactly():
    tt = TaggedTokens([0, 151_643, 2**32 - 1], [Tag.MODEL, Tag.INTERPRETER, Tag.HINT])
    blob = tt.to_bytes()
    assert len(blob) == 3 + 4 + 3 * 5
    assert TaggedTokens.from_bytes(blob) == tt
    assert TaggedTokens.from_dict(tt.to_dict()) == tt


def test_it_refuses_mismatched_lengths_and_foreign_blobs():
    with pytest.raises(ValueError):
        TaggedTokens([1, 2], [Tag.MODEL])
    with pytest.raises(ValueError):
        TaggedTokens.from_bytes(b"nope")
