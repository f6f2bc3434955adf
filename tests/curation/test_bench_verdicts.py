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


def test_a_kept_runs_export_is_loaded_for_its_correct_trajectories_only(db, tmp_path):
    """``--trajectories``: a kept run's ``trajectories.jsonl`` (``trajectory_export``) gives the
    comparison its correct trajectories, with their problems and steps as recorded."""
    from curation.bench.verdicts import _trajectories, load_exported

    problem = {"id": 1, "benchmark": "CALM Demo", "external_id": "demo-01",
               "question": "Maximize 70t + 50c ...", "reference_answer": 4100.0,
               "answer_status": "value"}  # fmt: skip
    steps = [{"index": 0, "reasoning": "</think>\nThe profit is \\boxed{4100}.", "code": None,
              "output": None, "result": None, "has_hint": False}]  # fmt: skip
    rows = [
        {"problem": problem, "steps": steps, "is_correct": True, "final_answer": "4100",
         "final_value": 4100.0, "answer_source": "boxed", "finish_reason": "eos",
         "code_calls": 0, "text": "..."},
        {"problem": problem, "steps": steps, "is_correct": False, "final_answer": "12"},
    ]  # fmt: skip
    path = tmp_path / "trajectories.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert load_exported([str(path)]) == 1
    [loaded] = _trajectories(None, None)
    assert loaded.problem.external_id == "demo-01" and loaded.problem.answer == 4100.0
    assert loaded.steps == steps and loaded.final_answer == "4100"
