"""A hint must not give the answer away: the reference value in any common number format is
found, within the answer rule's tolerance; other numbers in a hint are not."""

from __future__ import annotations

import pytest

from curation.engine.hint_checks import count_tokens, states_reference


@pytest.mark.parametrize(
    "hint",
    [
        "The optimum should be 4100.",
        "So the profit is 4,100 dollars.",
        "It comes to 4 100.",
        "About 4.1e3, I think.",
        r"It should be $4.1 \times 10^3$.",
        r"It should be $4.1 \times 10^{3}$.",
        r"Half of 8200 is $\frac{8200}{2}$.",
        "The answer is 4100.0000001.",
    ],
)
def test_a_hint_stating_the_reference_in_any_common_format_is_a_leak(hint):
    assert states_reference(hint, 4100.0, rule="relative", tolerance=1e-6) is not None


@pytest.mark.parametrize(
    "hint",
    [
        "Wait, the number of trips must be an integer; I should re-solve.",
        "Each table needs 4 hours of carpentry and the shop has 240 hours.",
        "Step 2 uses 41 and 100: the constraint is wrong.",
        "The optimum is near 4200.",
    ],
)
def test_a_hint_without_the_reference_is_no_leak(hint):
    assert states_reference(hint, 4100.0, rule="relative", tolerance=1e-6) is None


def test_the_leak_check_uses_the_rules_tolerance_and_skips_problems_without_an_optimum():
    assert states_reference("roughly 4150", 4100.0, rule="orlm") == "4150"  # within 5%
    assert states_reference("roughly 4150", 4100.0, rule="sirl") is None
    assert states_reference("it is 0", None, rule="sirl") is None


def test_hint_length_counts_the_reasoners_tokens_or_pre_tokens_without_a_leak():
    text = "Wait, the number of trips must be an integer; I should re-solve."
    assert count_tokens(text) == 17
    assert count_tokens(text, encode=lambda t: list(t.encode())) == len(text.encode())
