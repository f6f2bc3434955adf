"""Reference answers over time: a reviewer flags one as suspect, a lead accepts or rejects it,
an accepted correction is a new answer version, the history is kept; importing a corrected
source file (SIRL's raw ``en_answer`` schema) is a new version that keeps the old answers."""

from __future__ import annotations

import json

import pytest

from curation.formats.problem_files import parse_problem_file
from curation.models import AnswerFlag, AnswerVersion, Benchmark, Problem
from curation.services.answer_versions import (
    AnswerFlagError,
    answer_flag_decide,
    answer_flag_raise,
)
from curation.services.problems import problems_import

pytestmark = pytest.mark.django_db


@pytest.fixture
def problem(db):
    bench = Benchmark.objects.create(name="IndustryOR")
    p = Problem.objects.create(benchmark=bench, external_id="7", question="Maximize x.",
                               answer=100.0, answer_status="value", content_hash="h")  # fmt: skip
    AnswerVersion.objects.create(problem=p, number=1, answer=100.0, answer_status="value",
                                 origin="import")  # fmt: skip
    return p


def _flag(client, problem, **data):
    return client.post(f"/problems/{problem.pk}/flag", data)


def test_a_reviewer_flags_and_a_lead_accepts_a_correction_as_a_new_version(
    client_for, reviewer, lead, problem
):
    response = _flag(client_for(reviewer), problem, reason="Demand is 110, not 100.",
                     proposed_answer="110", proposed_status="value")  # fmt: skip
    assert response.status_code == 302
    flag = AnswerFlag.objects.get()
    assert (flag.status, flag.against_version, flag.proposed_answer) == ("open", 1, 110.0)
    problem.refresh_from_db()
    assert problem.answer == 100.0  # a flag alone changes nothing

    lead_client = client_for(lead)
    url = f"/problems/{problem.pk}/flags/{flag.pk}"
    assert lead_client.post(url, {"decision": "accept", "note": "checked"}).status_code == 302
    problem.refresh_from_db()
    assert (problem.answer, problem.answer_version) == (110.0, 2)
    versions = list(problem.answer_versions.values_list("number", "answer", "origin"))
    assert versions == [(1, 100.0, "import"), (2, 110.0, "correction")]
    flag.refresh_from_db()
    assert flag.status == "accepted" and flag.decided_by == lead and flag.version.number == 2

    page = lead_client.get(problem.get_absolute_url()).content.decode()
    assert "v1" in page and "v2" in page and "Demand is 110, not 100." in page
    assert f"Accepted by {lead.username}" in page


def test_a_rejected_flag_keeps_the_answer_and_the_history(client_for, reviewer, lead, problem):
    flag = answer_flag_raise(problem=problem, by=reviewer, reason="Looks infeasible.",
                             proposed_answer=None, proposed_status="no_best_solution")  # fmt: skip
    answer_flag_decide(flag_id=flag.pk, by=lead, accept=False, note="The model is feasible.")
    problem.refresh_from_db()
    assert (problem.answer, problem.answer_version) == (100.0, 1)
    flag.refresh_from_db()
    assert flag.status == "rejected" and flag.decision_note == "The model is feasible."
    with pytest.raises(AnswerFlagError, match="rejected already"):
        answer_flag_decide(flag_id=flag.pk, by=lead, accept=True)


def test_an_accepted_no_solution_correction_clears_the_value(reviewer, lead, problem):
    flag = answer_flag_raise(problem=problem, by=reviewer, reason="Constraints contradict.",
                             proposed_answer=None, proposed_status="no_best_solution")  # fmt: skip
    answer_flag_decide(flag_id=flag.pk, by=lead, accept=True)
    problem.refresh_from_db()
    assert (problem.answer, problem.answer_status) == (None, "no_best_solution")


def test_it_refuses_a_flag_without_reason_value_or_change(reviewer, problem):
    with pytest.raises(AnswerFlagError, match="say why"):
        answer_flag_raise(problem=problem, by=reviewer, reason=" ", proposed_answer=1.0)
    with pytest.raises(AnswerFlagError, match="propose the optimal value"):
        answer_flag_raise(problem=problem, by=reviewer, reason="x", proposed_answer=None)
    with pytest.raises(AnswerFlagError, match="is the current reference"):
        answer_flag_raise(problem=problem, by=reviewer, reason="x", proposed_answer=100.0)


def test_a_bad_flag_from_the_page_is_a_message_and_stores_nothing(client_for, reviewer, problem):
    response = _flag(client_for(reviewer), problem, reason="odd", proposed_answer="lots",
                     proposed_status="value")  # fmt: skip
    assert response.status_code == 302 and not AnswerFlag.objects.exists()


@pytest.mark.parametrize(
    ("persona", "flag_status", "decide_status"),
    [("outsider", 403, 403), ("reviewer", 302, 403), ("lead", 302, 302)],
)
def test_reviewers_flag_and_only_leads_decide(
    request, client_for, reviewer, problem, persona, flag_status, decide_status
):
    client = client_for(request.getfixturevalue(persona))
    data = {"reason": "why", "proposed_answer": "5", "proposed_status": "value"}
    assert _flag(client, problem, **data).status_code == flag_status
    flag = answer_flag_raise(problem=problem, by=reviewer, reason="r", proposed_answer=6.0)
    url = f"/problems/{problem.pk}/flags/{flag.pk}"
    assert client.post(url, {"decision": "accept"}).status_code == decide_status
    flag.refresh_from_db()
    assert flag.status == ("accepted" if persona == "lead" else "open")


def _sirl_file(name, answers):
    # SIRL's files carry the original "id": that, not the file name, keys the problem.
    rows = [{"en_question": f"Question {i}.", "en_answer": a, "id": i + 1, "difficulty": "Easy"}
            for i, a in enumerate(answers)]  # fmt: skip
    return parse_problem_file(json.dumps(rows).encode(), filename=name,
                              default_benchmark="IndustryOR").records  # fmt: skip


def test_importing_sirls_corrected_file_is_a_new_version_that_keeps_the_old_answers():
    problems_import(records=_sirl_file("IndustryOR.json", ["100", "No Best Solution", "7"]),
                    source="IndustryOR.json")  # fmt: skip
    summary = problems_import(
        records=_sirl_file("IndustryOR_fixedV2.json", ["110", "No Best Solution", "7"]),
        source="IndustryOR_fixedV2.json",
    )
    assert summary.as_rows()[0]["new_answers"] == 1
    fixed, same, _ = Problem.objects.order_by("source_index")
    assert (fixed.answer, fixed.answer_version) == (110.0, 2)
    history = list(fixed.answer_versions.values_list("number", "answer", "note"))
    assert history == [
        (1, 100.0, "imported from IndustryOR.json"),
        (2, 110.0, "re-imported with a changed answer from IndustryOR_fixedV2.json"),
    ]
    assert same.answer_version == 1 and same.answer_versions.count() == 1
    # Importing the corrected file again changes nothing.
    again = problems_import(
        records=_sirl_file("IndustryOR_fixedV2.json", ["110", "No Best Solution", "7"])
    )
    assert again.totals()["unchanged"] == 3 and AnswerVersion.objects.count() == 4


# --- a new answer judges the stored trajectories again ---------------------------------------


def _golden(trajectory, lead):
    from curation.models import Diagnosis, ModelEndpoint
    from curation.services.reviews import review_decide

    model = ModelEndpoint.objects.get_or_create(name="m", backend="openai", model="m")[0]
    Diagnosis.objects.create(trajectory=trajectory, endpoint=model, status="ok", flawless=True)
    review_decide(trajectory=trajectory, decision="approved", by=lead)


def test_an_accepted_correction_judges_the_problems_trajectories_again(
    client_for, reviewer, lead, problem, make_trajectory
):
    from curation.selectors.datasets import golden_trajectories

    said_100 = make_trajectory(problem=problem, final_answer="100", final_value=100.0)
    said_110 = make_trajectory(problem=problem, final_answer="110", final_value=110.0,
                               is_correct=False)  # fmt: skip
    no_answer = make_trajectory(problem=problem, final_answer="", final_value=None,
                                is_correct=False)  # fmt: skip
    sample = make_trajectory(problem=problem, final_answer="100", final_value=100.0,
                             source="evaluated")  # fmt: skip
    _golden(said_100, lead)
    assert list(golden_trajectories()) == [said_100]

    _flag(client_for(reviewer), problem, reason="Demand is 110.", proposed_answer="110",
          proposed_status="value")  # fmt: skip
    flag = AnswerFlag.objects.get()
    lead_client = client_for(lead)
    response = lead_client.post(f"/problems/{problem.pk}/flags/{flag.pk}",
                                {"decision": "accept"}, follow=True)  # fmt: skip
    assert (
        "3 trajectories judged again: 1 now correct, 1 now incorrect" in response.content.decode()
    )
    for t in (said_100, said_110, no_answer, sample):
        t.refresh_from_db()
    assert (said_100.is_correct, said_110.is_correct, no_answer.is_correct) == (False, True, False)
    assert sample.is_correct is True  # an evaluation keeps the answer version it recorded
    assert not golden_trajectories().exists()  # the golden filter follows the current answer


def test_a_batchs_trajectories_are_judged_again_with_the_batchs_own_rule(
    lead, problem, make_trajectory
):
    from curation.models import Batch, BatchItem, BatchRound, ModelEndpoint

    model = ModelEndpoint.objects.create(name="m", backend="openai", model="m", role="both")
    batch = Batch.objects.create(name="b", reasoner=model, intervener=model,
                                 config={"answer_rule": "percent5"})  # fmt: skip
    said = {"final_answer": "105", "final_value": 105.0, "is_correct": False}
    root = make_trajectory(problem=problem, **said)
    branch = make_trajectory(problem=problem, parent=root, **said)  # the batch's round 1
    by_hand = make_trajectory(problem=problem, parent=root, **said)  # a reviewer's hint
    alone = make_trajectory(problem=problem, **said)
    item = BatchItem.objects.create(batch=batch, problem=problem, root=root, trajectory=branch,
                                    state="done", outcome="wrong_flawless")  # fmt: skip
    BatchRound.objects.create(item=item, number=1, before=root, after=branch)
    flag = answer_flag_raise(problem=problem, by=lead, reason="r", proposed_answer=110.0)
    decided = answer_flag_decide(flag_id=flag.pk, by=lead, accept=True)
    assert decided.rejudged.now_correct == 2
    for t in (root, branch, by_hand, alone, item):
        t.refresh_from_db()
    # 105 is within 5% of 110 (the batch's rule), not within 1e-6 (the settings' default, which
    # judged the reviewer's branch and the lone trajectory when they were made).
    assert [t.is_correct for t in (root, branch, by_hand, alone)] == [True, True, False, False]
    assert item.outcome == "candidate"  # judged flawless, and now correct


def test_an_import_with_a_changed_answer_judges_that_problems_trajectories_again(
    make_trajectory,
):
    problems_import(records=_sirl_file("IndustryOR.json", ["100", "7"]), source="a.json")
    first, second = Problem.objects.exclude(external_id="7").order_by("source_index")
    t = make_trajectory(problem=first, final_answer="110", final_value=110.0, is_correct=False)
    other = make_trajectory(problem=second, final_answer="110", final_value=110.0,
                            is_correct=False)  # fmt: skip
    summary = problems_import(records=_sirl_file("IndustryOR_fixedV2.json", ["110", "7"]))
    assert summary.rejudged == 1 and summary.to_dict()["rejudged"] == 1
    t.refresh_from_db()
    other.refresh_from_db()
    assert (t.is_correct, other.is_correct) == (True, False)
