from __future__ import annotations

import itertools

import pytest

from curation.engine import Tag, TaggedTokens, cut_offset, split_steps, truncate_output
from curation.engine.format import (
    TRUNCATION_MARKER,
    FenceState,
    decode_with_offsets,
    output_block,
    output_text,
    scan_fences,
)


def _decode(tok):
    return lambda ids: tok.decode(list(ids), skip_special_tokens=False)


def _completion(tok, parts):
    tt = TaggedTokens()
    for text, tag in parts:
        tt.extend(tok.encode(text, add_special_tokens=False), tag)
    return tt


PARTS = [
    ("<think>\nLet me model it.\n```python\nprint(1)\n```", Tag.MODEL),
    ("\n```output\n1\n```\n", Tag.INTERPRETER),
    ("Wait, the trips must be integers.\n", Tag.HINT),
    ("So:\n```python\nprint(2)\n```\n", Tag.MODEL),
    ("```output\n2\n```\n", Tag.INTERPRETER),
    ("Done.\n</think>\nThe answer is \\boxed{2}.<|im_end|>", Tag.MODEL),
]


def test_it_splits_a_tagged_completion_into_steps_with_token_offsets(tiny_tokenizer):
    tok = tiny_tokenizer
    completion = _completion(tok, PARTS)
    steps = split_steps(completion, _decode(tok), [{"status": "ok"}, {"status": "ok"}])
    assert [s.code for s in steps] == ["print(1)\n", "print(2)\n", None]
    assert steps[0].reasoning == "<think>\nLet me model it.\n"
    assert steps[1].reasoning == "Wait, the trips must be integers.\nSo:\n"
    assert [s.output for s in steps[:2]] == ["1", "2"]
    assert [s.has_hint for s in steps] == [False, True, False]
    assert steps[2].reasoning.startswith("Done.\n</think>")
    assert steps[0].result == {"status": "ok"} and steps[2].result is None
    # Offsets tile the completion, and each boundary is where the text says it is.
    assert steps[0].token_start == 0 and steps[-1].token_end == len(completion)
    for a, b in itertools.pairwise(steps):
        assert a.token_end == b.token_start
    for s in steps[:2]:
        assert completion.tags[s.output_token_start] == Tag.INTERPRETER
        assert completion.tags[s.output_token_start - 1] != Tag.INTERPRETER
        code_text = tok.decode(completion.ids[s.code_token_start : s.output_token_start])
        assert code_text.lstrip().startswith("```python")
    assert steps[1].token_start == len(tok.encode(PARTS[0][0] + PARTS[1][0]))


def test_it_maps_a_char_in_a_steps_reasoning_to_a_token_boundary_at_or_before_it(tiny_tokenizer):
    tok = tiny_tokenizer
    completion = _completion(tok, PARTS)
    decode = _decode(tok)
    steps = split_steps(completion, decode)
    reasoning = steps[1].reasoning
    for char in range(len(reasoning)):
        cut = cut_offset(completion, decode, 1, char, steps)
        assert steps[1].token_start <= cut <= steps[1].code_token_start
        text_before = tok.decode(completion.ids[steps[1].token_start : cut])
        assert reasoning.startswith(text_before) and len(text_before) <= char
    assert cut_offset(completion, decode, 1, 0, steps) == steps[1].token_start
    assert cut_offset(completion, decode, 1, 10_000, steps) == steps[1].code_token_start
    with pytest.raises(IndexError):
        cut_offset(completion, decode, 9, 0, steps)


def test_it_keeps_char_offsets_right_across_multibyte_characters(tiny_tokenizer):
    decode = _decode(tiny_tokenizer)
    ids = tiny_tokenizer.encode("x ≤ 4 — 最优 ok", add_special_tokens=False)
    text, offsets = decode_with_offsets(decode, ids)
    assert text == decode(ids)
    assert offsets == sorted(offsets) and offsets[-1] == len(text)


def test_it_truncates_long_output_to_the_first_and_last_400_chars():
    text = "a" * 500 + "b" * 500
    out = truncate_output(text)
    assert out == "a" * 400 + TRUNCATION_MARKER + "b" * 400
    assert truncate_output("short") == "short"
    assert truncate_output("x" * 800) == "x" * 800


def test_it_shows_stdout_and_the_traceback_of_a_failed_run():
    assert output_text({"status": "ok", "stdout": "1\n", "stderr": "warn"}) == "1\n"
    failed = {"status": "error", "stdout": "partial\n", "stderr": "Traceback ...\nNameError: m"}
    assert output_text(failed) == "partial\nTraceback ...\nNameError: m"
    assert "TimeoutError" in output_text({"status": "timeout", "stdout": "", "stderr": ""})
    assert output_block("1\n", after="```") == "\n```output\n1\n```\n"
    assert output_block("", after="```\n") == "```output\n```\n"


def test_it_stops_only_where_a_python_block_closes():
    _, close = scan_fences("text\n```text\nnot code\n```\nmore\n```python\nx = 1\n```\nafter")
    assert close is not None
    state, close = scan_fences("```output\n1\n```\n")
    assert close is None and state.open is None
    # A hint that ends by opening a block: the model's closing fence ends the step.
    state, close = scan_fences("print(1)\n``", FenceState(open="python"))
    assert close is None
    _, close = scan_fences("`", state)
    assert close == 1
