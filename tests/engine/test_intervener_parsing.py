"""Verdicts as real models write them (seen from Qwen2.5-Coder-1.5B through llama.cpp)."""

from __future__ import annotations

from curation.engine.intervener import parse_verdict

CODES = ["manual_computation", "incorrect_formulation"]


def test_it_accepts_latex_backslashes_inside_json_strings():
    reply = (
        '```json\n{"flawless": false, "step": 1, "flaw_type": "incorrect_formulation", '
        '"hint": "The objective is \\(70x + 50y\\); check the sense.", '
        '"rationale": "Uses \\max instead of \\min."}\n```'
    )
    verdict = parse_verdict(reply, n_steps=3, flaw_codes=CODES)
    assert verdict.error is None
    assert (verdict.step, verdict.flaw_type) == (1, "incorrect_formulation")
    assert verdict.hint == "The objective is \\(70x + 50y\\); check the sense."


def test_it_still_reads_valid_escapes_as_json_does():
    reply = (
        '{"flawless": true, "step": null, "flaw_type": null, "hint": null, "rationale": "a\\nb"}'
    )
    verdict = parse_verdict(reply, n_steps=2, flaw_codes=CODES)
    assert verdict.flawless and verdict.rationale == "a\nb"
