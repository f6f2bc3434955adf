"""An Intervener that judges, not one that is told: with the reference shown, a matching answer
is not announced and the task does not say "flawless unless"; a wrong one is pointed out."""

from __future__ import annotations

from curation.engine import DEFAULT_TAXONOMY, Facts, Step
from curation.engine.intervener import build_prompt

STEPS = [
    Step(index=0, reasoning="Profit is 70*20 + 50*54 = 4100 by hand.", code=None, output=None,
         result=None, has_hint=False, token_start=0, code_token_start=None,
         output_token_start=None, token_end=10),
]  # fmt: skip


def _prompt(correct):
    facts = Facts(answer="4100", reference="4100" if correct else "4200", correct=correct)
    return build_prompt("Tables and chairs.", STEPS, DEFAULT_TAXONOMY, facts=facts)


def test_a_matching_answer_does_not_prime_the_flawless_verdict():
    prompt = _prompt(True)
    assert "Reference optimal objective value: 4100" in prompt  # the reference is still shown
    assert "matches the reference" not in prompt
    assert "flawless: true unless" not in prompt.replace("Answer flawless", "flawless")
    assert "a right final answer does not make a trajectory flawless" in prompt


def test_a_wrong_answer_is_pointed_out_and_is_never_flawless():
    prompt = _prompt(False)
    assert "does NOT match the reference: the trajectory has a flaw" in prompt
    assert "a right final answer does not make" not in prompt
