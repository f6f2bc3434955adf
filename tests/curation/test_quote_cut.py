"""The Intervener points inside a step: its verdict may quote the first wrong sentence, and the
automated hint then cuts just before it, keeping the correct part of the step. A quote that is
not in the step falls back to the step's start, and that is recorded. The Reasoner and the
Intervener are the SCRIPTED STAND-IN for a language model (named as such); code runs in the
real sandbox."""

from __future__ import annotations

import json

import pytest

from curation.engine import quote_offset
from curation.engine.intervener import parse_verdict
from curation.models import BatchRound, Diagnosis, Hint, ModelEndpoint
from curation.services.batches import batch_advance, batch_create

pytestmark = pytest.mark.django_db(transaction=True)

RIGHT = "Tables earn 70 and chairs earn 50, so the objective is 70t + 50c."
WRONG = "Carpentry gives 4t + 3c >= 240."
PARENT = (
    f"{RIGHT} {WRONG} Let me solve it.\n```python\nprint('OBJECTIVE_VALUE: 0')\n```\n"
    "</think>\\boxed{0}"
)
HINT = "Wait, carpentry hours are a limit: 4t + 3c <= 240."


def _run(tiny_model_path, problem, quote):
    reasoner = ModelEndpoint.objects.create(
        name="scripted-reasoner", backend="scripted", role="reasoner", model=str(tiny_model_path),
        sampling={"max_new_tokens": 400}, extra={"completions": [PARENT, " So.</think>\\boxed{1}"]},
    )  # fmt: skip
    verdict = {"flawless": False, "step": 0, "flaw_type": "constraint_error", "hint": HINT,
               "quote": quote, "rationale": "a limit written as >="}  # fmt: skip
    intervener = ModelEndpoint.objects.create(
        name="scripted-intervener", backend="scripted", role="intervener",
        model=str(tiny_model_path), extra={"chat_replies": [json.dumps(verdict)] * 4},
    )  # fmt: skip
    batch = batch_create(name="quote", problems=[problem], reasoner=reasoner,
                         intervener=intervener, config={"max_interventions": 1},
                         enqueue=False)  # fmt: skip
    for _ in range(10):
        if not batch_advance(batch_id=batch.pk):
            break
    return BatchRound.objects.get(item__batch=batch)


def test_an_intervener_quote_cuts_inside_the_step_and_keeps_its_correct_part(
    tiny_model_path, problem, taxonomy
):
    round_ = _run(tiny_model_path, problem, WRONG)
    hint = Hint.objects.get(branch=round_.after)
    assert hint.char_offset == round_.before.steps[0]["reasoning"].index(WRONG)
    assert hint.cut_note == ""
    text = round_.after.text
    assert RIGHT in text and WRONG not in text.split(HINT)[0]
    assert text.index(RIGHT) < text.index(HINT)
    assert Diagnosis.objects.get(pk=hint.diagnosis_id).quote == WRONG


def test_a_quote_that_is_not_in_the_step_falls_back_to_the_step_start_and_says_so(
    tiny_model_path, problem, taxonomy
):
    round_ = _run(tiny_model_path, problem, "A sentence the trajectory never wrote.")
    hint = Hint.objects.get(branch=round_.after)
    assert hint.char_offset is None
    assert hint.cut_note == (
        "the Intervener's quote is not in step 0: the hint goes before the step"
    )
    assert RIGHT not in round_.after.text.split(HINT)[0]


def test_a_quote_is_found_despite_spacing_and_case():
    reasoning = f"{RIGHT}\n  Carpentry   gives 4t + 3c >= 240."
    assert quote_offset(reasoning, "carpentry gives 4t + 3c >= 240.") == len(RIGHT) + 3
    assert quote_offset(reasoning, None) is None


def test_a_verdict_s_quote_must_be_text():
    reply = json.dumps({"flawless": False, "step": 0, "flaw_type": "constraint_error",
                        "hint": HINT, "quote": 42, "rationale": ""})  # fmt: skip
    with pytest.raises(ValueError, match='"quote" must be a string'):
        parse_verdict(reply, n_steps=1, flaw_codes=["constraint_error"])
