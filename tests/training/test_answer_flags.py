"""An answer-flag round trip changes what the golden filter judges against, and not earlier
evaluations: they keep the answers (and version numbers) they were judged with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.engine import RolloutConfig, rollout
from curation.engine.backends.scripted import ScriptedBackend
from curation.models import Problem
from curation.services.answer_versions import answer_flag_decide, answer_flag_raise
from curation.services.trajectories import trajectory_from_rollout
from training.models import EvaluationScore
from training.services.evaluations import evaluation_rejudge
from training.services.launcher import inputs_write


def _answered(tiny_model_path, text: str):
    """A finished rollout whose boxed answer is ``text`` (SCRIPTED STAND-IN for the model)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    backend = ScriptedBackend(tokenizer, [f"</think>\n\\boxed{{{text}}}"])
    return rollout(backend, "Q.", RolloutConfig(), run_code=lambda code, **kw: {})


def test_an_accepted_correction_changes_the_golden_filter_and_not_earlier_evaluations(
    finished_eval, toy_problems, reviewer, lead, tiny_model_path
):
    toy2 = toy_problems[1]  # reference 15; the evaluation answered 15.3 (wrong under sirl)
    answer = _answered(tiny_model_path, "15.3")
    # The batch's golden filter is the trajectory's is_correct, judged when it is stored.
    assert trajectory_from_rollout(answer, problem=toy2, rule="sirl").is_correct is False

    flag = answer_flag_raise(problem=toy2, by=reviewer, reason="The bound gives 15.3.",
                             proposed_answer=15.3)  # fmt: skip
    answer_flag_decide(flag_id=flag.pk, by=lead, accept=True)
    toy2 = Problem.objects.get(pk=toy2.pk)
    assert (toy2.answer, toy2.answer_version) == (15.3, 2)
    assert trajectory_from_rollout(answer, problem=toy2, rule="sirl").is_correct is True

    # The finished evaluation still says what it was judged against: version 1, 15.
    score = EvaluationScore.objects.get(run=finished_eval)
    stored = next(p for p in score.answers if p["id"] == str(toy2.pk))
    assert (stored["answer"], stored["answer_version"]) == (15.0, 1)
    assert score.pass_at_1 == pytest.approx(1 / 3)
    assert finished_eval.results["record"]["answer_versions"] == [1]
    # Re-judging it keeps its own references too (only the rule changes).
    (sirl_again,) = evaluation_rejudge(run=finished_eval, rule="optmath")
    assert sirl_again.pass_at_1 == pytest.approx(1 / 3)

    # A new evaluation of the same problems is given the current answer and its version.
    inputs_write(finished_eval)
    lines = Path(finished_eval.output_dir, "problems.jsonl").read_text().splitlines()
    sent = next(json.loads(x) for x in lines if json.loads(x)["id"] == str(toy2.pk))
    assert (sent["answer"], sent["answer_version"]) == (15.3, 2)


def test_the_samples_page_shows_the_reference_an_evaluation_used_and_the_current_one(
    client_for, finished_eval, toy_problems, reviewer, lead
):
    toy2 = toy_problems[1]
    flag = answer_flag_raise(problem=toy2, by=reviewer, reason="r", proposed_answer=15.3)
    answer_flag_decide(flag_id=flag.pk, by=lead, accept=True)
    page = client_for(lead).get(f"/training/evaluations/{finished_eval.pk}/Toy/").content.decode()
    assert '15 <small class="muted">v1</small>' in page and "now v2: 15.3" in page
    assert "judged under <strong>sirl</strong>" in page


def test_a_trajectory_saved_after_a_correction_is_judged_against_the_new_answer(
    toy_problems, reviewer, lead, tiny_model_path
):
    from django.db import transaction

    # A rollout starts with the problem as it was (reference 15), and takes minutes; meanwhile a
    # lead accepts 15.3. Saving it judges against the answer under the row lock, not the old one.
    stale = Problem.objects.get(pk=toy_problems[1].pk)
    flag = answer_flag_raise(problem=stale, by=reviewer, reason="r", proposed_answer=15.3)
    answer_flag_decide(flag_id=flag.pk, by=lead, accept=True)
    assert stale.answer == 15
    with transaction.atomic():
        saved = trajectory_from_rollout(_answered(tiny_model_path, "15.3"), problem=stale,
                                        rule="sirl")  # fmt: skip
    assert saved.is_correct is True
