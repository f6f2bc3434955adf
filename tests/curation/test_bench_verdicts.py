"""``python -m curation.bench verdicts``: the Intervener's verdicts on correct trajectories,
asked with the baseline prompt that told it the answer matches ("told", before issue 18's fix)
and with this code's prompt ("judges"). The Intervener here is the engine's SCRIPTED STAND-IN
for a language model: it calls a trajectory flawless exactly when its prompt says the answer
matches, so the test sees which prompt each variant really sent."""

from __future__ import annotations

import json

from curation.bench.verdicts import _interveners, summarize
from curation.models import ModelEndpoint

FLAWLESS = json.dumps({"flawless": True, "step": None, "flaw_type": None, "hint": None,
                       "rationale": "fine"})  # fmt: skip
FLAWED = json.dumps({"flawless": False, "step": 0, "flaw_type": "manual_computation",
                     "hint": "Wait, let me run the solver.", "rationale": "by hand"})  # fmt: skip


def test_the_baseline_is_told_the_answer_matches_and_this_code_is_not(
    make_trajectory, tiny_model_path, taxonomy
):
    endpoint = ModelEndpoint.objects.create(
        name="scripted intervener", backend="scripted", role="intervener",
        model=str(tiny_model_path),
        extra={"chat_rules": [["- The stated answer matches the reference.", FLAWLESS],
                              ["", FLAWED]]},
    )  # fmt: skip
    trajectory = make_trajectory()  # correct: 4100 against 4100
    interveners = _interveners(endpoint, None)
    told, judges = interveners["told"].ask(trajectory), interveners["judges"].ask(trajectory)
    assert told.flawless and not judges.flawless
    told_prompt = interveners["told"].backend.chat_calls[0][-1]["content"]
    judges_prompt = interveners["judges"].backend.chat_calls[0][-1]["content"]
    assert "Answer flawless: true unless a step clearly has one of the flaws above" in told_prompt
    assert "a right final answer does not make a trajectory flawless" in judges_prompt
    assert "matches the reference" not in judges_prompt
    # Everything else is the same prompt: the reference is shown to both.
    assert "Reference optimal objective value: 4100" in told_prompt
    assert "Reference optimal objective value: 4100" in judges_prompt


def test_the_summary_counts_flawless_verdicts_and_majority_changes():
    def v(flawless, flaw=None):
        return {"flawless": flawless, "flaw_type": flaw, "step": 0, "source": "llm",
                "error": None if flawless is not None else "bad JSON", "rationale": ""}  # fmt: skip

    rows = [
        {"told": [v(True), v(True)], "judges": [v(False, "manual_computation"), v(False, "x")]},
        {"told": [v(True), v(False, "x")], "judges": [v(True), v(True)]},
        {"told": [v(None), v(None)], "judges": [v(True), v(False, "x")]},
    ]
    s = summarize(rows, 2)
    assert s["told"] == {"asked": 6, "valid": 4, "flawless": 3, "flawless_rate": 0.75,
                         "flaw_types": {"x": 1}}  # fmt: skip
    assert s["judges"]["flawless"] == 3 and s["judges"]["valid"] == 6
    assert s["judges"]["flaw_types"] == {"manual_computation": 1, "x": 2}
    # Row 2: told 1 of 2 is no majority (flawed), judges 2 of 2 flawless. Row 3: told has none.
    assert s["changes"] == {"flawless_to_flawed": 1, "flawed_to_flawless": 1, "same": 0,
                            "undecided": 1}  # fmt: skip
