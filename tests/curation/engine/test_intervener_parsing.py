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


def test_latex_commands_that_look_like_json_escapes_stay_latex():
    # Seen in the loop bench: "\text{Total Time}" came back as a tab and "ext{...}".
    reply = (
        '{"flawless": false, "step": 0, "flaw_type": "incorrect_formulation", '
        '"hint": "Wait, the time is \\(\\text{Total} = 20b \\times 2\\), \\frac{1}{2} of it.", '
        '"rationale": "x\\ny"}'
    )
    verdict = parse_verdict(reply, n_steps=2, flaw_codes=CODES)
    assert (
        verdict.hint == "Wait, the time is \\(\\text{Total} = 20b \\times 2\\), \\frac{1}{2} of it."
    )
    assert verdict.rationale == "x\ny"


def test_a_hint_that_gives_the_answer_away_is_refused():
    import pytest

    for hint in ("The maximum value is \\\\boxed{150}.", "The maximum value is \\boxed{150}."):
        reply = json_reply(hint)
        with pytest.raises(ValueError, match="must not state the final answer"):
            parse_verdict(reply, n_steps=2, flaw_codes=CODES)


def json_reply(hint: str) -> str:
    return (
        '{"flawless": false, "step": 0, "flaw_type": "incorrect_formulation", '
        f'"hint": "{hint}", "rationale": "r"}}'
    )


def test_a_hint_that_copies_the_prompts_template_is_refused():
    # The prompt's flawed example is a template; Qwen2.5-Coder-1.5B copied the concrete example
    # it replaced word for word onto unrelated problems.
    import pytest

    from curation.engine.intervener import EXAMPLE_HINT

    for hint in (EXAMPLE_HINT, "Wait, <what is wrong in step 2, and what to do instead>. Fix x."):
        with pytest.raises(ValueError, match="placeholder"):
            parse_verdict(json_reply(hint), n_steps=2, flaw_codes=CODES)
    for own in (
        "Wait, each chair needs 3 hours of carpentry, not 2; let me fix that constraint.",
        "Wait, the bound is x <= 10 and y >= 3, not x < 5; let me fix it.",
    ):
        assert parse_verdict(json_reply(own), n_steps=2, flaw_codes=CODES).hint == own
