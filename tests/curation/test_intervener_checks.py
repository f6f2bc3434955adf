"""The Intervener grounded in the execution record: the checks run first, their findings are
facts in the LLM's prompt, a finding at an earlier step than the LLM's verdict wins, and the
verdict records which part made it. The LLM is the engine's SCRIPTED STAND-IN for a language
model (it answers by rules); the records are hand-built with the sandbox's own error text.
Reviewers accept or dismiss a finding beside its step."""

from __future__ import annotations

import json

import pytest

from curation.models import CheckFinding, Diagnosis, FlawLabel, ModelEndpoint
from curation.services.checks import CheckError, check_finding_decide, open_findings
from curation.services.diagnoses import Intervener
from tests.curation.conftest import step

GUROBI_ERROR = (
    "ModuleNotFoundError: gurobipy is not available in this sandbox. Use Pyomo with HiGHS "
    "instead: pyo.SolverFactory('highs').solve(model)."
)


def steps_with_a_missing_solver():
    failed = step(0, "Let me use Gurobi.", "import gurobipy as gp", "", status="error")
    stderr = f"Traceback (most recent call last):\n{GUROBI_ERROR}\n"
    failed["result"] = {"status": "error", "stdout": "", "solves": [], "stderr": stderr}
    failed["output"] = failed["result"]["stderr"]
    by_hand = step(1, "Then by hand.", "print(70 * 30 + 50 * 40)", "4100\n")
    by_hand["result"] = {"status": "ok", "stdout": "4100\n", "solves": []}
    return [failed, by_hand, step(2, "</think>\nThe profit is \\boxed{4100}.")]


def verdict(step_index, flaw="manual_computation"):
    return json.dumps({"flawless": False, "step": step_index, "flaw_type": flaw,
                       "hint": "Wait, let me use the solver.", "rationale": "by hand"})  # fmt: skip


@pytest.fixture
def intervener_endpoint(tiny_model_path, taxonomy):
    def make(reply: str):
        return ModelEndpoint.objects.create(
            name=f"scripted-{ModelEndpoint.objects.count()}", backend="scripted",
            role="intervener", model=str(tiny_model_path), extra={"chat_rules": [["", reply]]},
        )  # fmt: skip

    return make


def test_a_finding_before_the_llms_step_wins_and_the_verdict_says_so(
    make_trajectory, intervener_endpoint, reviewer, client_for
):
    trajectory = make_trajectory(steps_with_a_missing_solver())
    intervener = Intervener(intervener_endpoint(verdict(2)), mode="both")
    got = intervener.ask(trajectory)
    # The LLM was told the findings as facts.
    prompt = intervener.backend.chat_calls[0][-1]["content"]
    assert "Checked from the execution record, at step 1 (`broken_code`)" in prompt
    assert "gurobipy is not available in this sandbox" in prompt
    assert "The execution record proves a flaw at step 1" in prompt
    assert (got.source, got.check, got.step, got.flaw_type) == (
        "checks", "unavailable_solver", 1, "broken_code")  # fmt: skip
    assert "gurobipy is not available in this sandbox" in got.hint
    assert "the LLM named step 2" in got.rationale
    diagnosis = intervener.record(trajectory, got)
    diagnosis.refresh_from_db()
    assert (diagnosis.source, diagnosis.check_name, diagnosis.step_index) == (
        "checks", "unavailable_solver", 1)  # fmt: skip
    assert [f["check"] for f in diagnosis.findings] == [
        "unavailable_solver", "answer_after_failure", "no_solver_call"]  # fmt: skip
    assert verdict(2) in diagnosis.raw  # the LLM's answer is kept
    label = FlawLabel.objects.get(trajectory=trajectory, source="model")
    assert (label.step_index, label.flaw_type.code) == (1, "broken_code")
    page = client_for(reviewer).get(trajectory.get_absolute_url()).content.decode()
    assert "made by the check unavailable_solver" in page.split('id="suggestion"', 1)[1]


def test_the_llm_keeps_a_verdict_at_an_earlier_step(make_trajectory, intervener_endpoint):
    trajectory = make_trajectory(steps_with_a_missing_solver())
    intervener = Intervener(intervener_endpoint(verdict(0, "incorrect_formulation")))
    got = intervener.ask(trajectory)
    assert (got.source, got.step, got.flaw_type) == ("llm", 0, "incorrect_formulation")
    assert intervener.record(trajectory, got).source == "llm"


def test_a_flawless_or_invalid_llm_verdict_loses_to_a_finding(make_trajectory, intervener_endpoint):
    trajectory = make_trajectory(steps_with_a_missing_solver())
    clean = json.dumps({"flawless": True, "rationale": "fine"})
    for reply in (clean, "no JSON here"):
        got = Intervener(intervener_endpoint(reply)).ask(trajectory)
        assert (got.source, got.step, got.error) == ("checks", 1, None)


def test_the_mode_is_a_setting_checks_only_asks_no_llm_llm_only_runs_no_check(
    make_trajectory, intervener_endpoint, settings
):
    trajectory = make_trajectory(steps_with_a_missing_solver())
    endpoint = intervener_endpoint(verdict(2))
    checks_only = Intervener(endpoint, mode="checks")
    got = checks_only.ask(trajectory)
    assert checks_only.backend is None and (got.source, got.step) == ("checks", 1)
    settings.CALM_INTERVENER_MODE = "llm"
    llm_only = Intervener(endpoint)
    got = llm_only.ask(trajectory)
    assert (got.source, got.step, got.findings) == ("llm", 2, [])
    assert "Checked from the execution record" not in llm_only.backend.chat_calls[0][-1]["content"]
    # A correct trajectory: checks only finds it flawless, recorded as the checks' verdict.
    clean = make_trajectory()
    got = checks_only.ask(clean)
    assert (got.flawless, got.source) == (True, "checks")
    with pytest.raises(ValueError, match="unknown Intervener mode"):
        Intervener(endpoint, mode="sometimes")


def test_a_dismissed_finding_is_recorded_and_not_offered_again(make_trajectory, reviewer):
    trajectory = make_trajectory(steps_with_a_missing_solver())
    offered = open_findings(trajectory)
    assert [f.check for f in offered[1]] == ["unavailable_solver"]
    assert [f.check for f in offered[2]] == ["answer_after_failure", "no_solver_call"]
    decision = check_finding_decide(
        trajectory=trajectory, step_index=1, check="unavailable_solver", accept=False, by=reviewer
    )
    assert (decision.status, decision.decided_by, decision.label) == ("dismissed", reviewer, None)
    assert "gurobipy" in decision.evidence
    assert 1 not in open_findings(trajectory)
    with pytest.raises(CheckError, match="already decided"):
        check_finding_decide(trajectory=trajectory, step_index=1, check="unavailable_solver",
                             accept=True, by=reviewer)  # fmt: skip
    assert CheckFinding.objects.filter(trajectory=trajectory).count() == 1
    assert not FlawLabel.objects.filter(trajectory=trajectory).exists()


def test_an_accepted_finding_becomes_the_reviewers_label(make_trajectory, reviewer):
    trajectory = make_trajectory(steps_with_a_missing_solver())
    decision = check_finding_decide(trajectory=trajectory, step_index=2,
                                    check="no_solver_call", accept=True, by=reviewer)  # fmt: skip
    label = decision.label
    assert (label.source, label.author_user, label.step_index) == ("human", reviewer, 2)
    assert label.flaw_type.code == "manual_computation"
    assert [f.check for f in open_findings(trajectory)[2]] == ["answer_after_failure"]
    with pytest.raises(CheckError, match="no check 'no_solver_call' finding at step 1"):
        check_finding_decide(trajectory=trajectory, step_index=1, check="no_solver_call",
                             accept=True, by=reviewer)  # fmt: skip


def test_a_correct_trajectory_offers_nothing(make_trajectory, taxonomy):
    assert open_findings(make_trajectory()) == {}
    assert not Diagnosis.objects.exists()


def test_the_step_view_shows_a_finding_beside_its_step_and_a_dismissal_sticks(
    make_trajectory, reviewer, client_for, taxonomy
):
    trajectory = make_trajectory(steps_with_a_missing_solver())
    client = client_for(reviewer)
    page = client.get(trajectory.get_absolute_url()).content.decode()
    card = page.split('id="step-1"', 1)[1].split('id="step-2"', 1)[0]
    assert 'data-check="unavailable_solver"' in card
    assert "gurobipy is not available in this sandbox" in card
    assert "Step 1&#x27;s code asked for gurobipy" in card  # numbered from 1, as on the page
    url = f"/trajectories/{trajectory.pk}/steps/1/check"
    response = client.post(url, {"check": "unavailable_solver", "decision": "dismiss"})
    assert response.status_code == 302 and response["Location"].endswith("#step-1")
    assert CheckFinding.objects.get(trajectory=trajectory).status == "dismissed"
    page = client.get(trajectory.get_absolute_url()).content.decode()
    assert 'data-check="unavailable_solver"' not in page
    assert 'data-check="no_solver_call"' in page  # step 2's findings are still offered
    # A second decision on it is refused with a message, and nothing changes.
    client.post(url, {"check": "unavailable_solver", "decision": "accept"})
    assert CheckFinding.objects.count() == 1 and not FlawLabel.objects.exists()


def test_agreement_between_checks_and_reviewers_is_a_row_of_the_agreement_page(
    make_trajectory, reviewer, client_for, taxonomy
):
    trajectory = make_trajectory(steps_with_a_missing_solver())
    # The reviewer dismisses step 1's finding and accepts step 2's: one disagreement, one
    # agreement.
    check_finding_decide(trajectory=trajectory, step_index=1, check="unavailable_solver",
                         accept=False, by=reviewer)  # fmt: skip
    check_finding_decide(trajectory=trajectory, step_index=2, check="answer_after_failure",
                         accept=True, by=reviewer)  # fmt: skip
    page = client_for(reviewer).get("/agreement/").content.decode()
    row = page.split('id="checks-agreement"', 1)[1].split("</table>", 1)[0]
    cells = [c.split("</td>")[0] for c in row.split('<td class="num">')[1:]]
    assert cells[:2] == ["2", "0.500"]  # two step pairs, half of them equal


# The checks' hint opens a ```python block (stripped, as every hint is): the continuation writes
# the code straight away.
SOLVE = (
    "\nimport pyomo.environ as pyo\n"
    "m = pyo.ConcreteModel()\nm.t = pyo.Var(domain=pyo.NonNegativeReals)\n"
    "m.c = pyo.Var(domain=pyo.NonNegativeReals)\n"
    "m.a = pyo.Constraint(expr=4 * m.t + 3 * m.c <= 240)\n"
    "m.b = pyo.Constraint(expr=2 * m.t + m.c <= 100)\n"
    "m.o = pyo.Objective(expr=70 * m.t + 50 * m.c, sense=pyo.maximize)\n"
    "pyo.SolverFactory('appsi_highs').solve(m)\nprint('OBJECTIVE_VALUE:', pyo.value(m.o))\n```\n"
    "</think>\nThe maximum profit is \\boxed{4100}.<|im_end|>"
)
FIRST = (
    "Let me use Gurobi.\n```python\nimport gurobipy as gp\n```\n"
    "Then by hand.\n```python\nprint(70 * 30 + 50 * 40)\n```\n"
    "</think>\nThe profit is \\boxed{4100}.<|im_end|>"
)


@pytest.mark.django_db(transaction=True)
def test_in_a_batch_a_checks_hint_makes_the_branch_and_the_bench_counts_it_by_source(
    problem, tiny_model_path, taxonomy, monkeypatch
):
    """The CALM loop with a scripted Reasoner (its code runs in the real sandbox): the checks'
    finding at step 1 beats the LLM's step 2, its hint (with the sandbox's error) makes the
    branch, the branch solves and is correct; ``bench loop``'s table counts it as the checks'."""
    from curation.bench.loop import by_source
    from curation.models import BatchItem, BatchRound, Hint
    from curation.services.batches import batch_advance, batch_create
    from curation.services.endpoints import backend_for

    monkeypatch.setattr("curation.services.batches.batch_send", lambda batch: None)
    # One scripted Reasoner for the whole batch, as one model server would be: it replays its
    # completions in order across the generate and intervene phases.
    built: dict = {}
    monkeypatch.setattr("curation.services.batches.backend_for",
                        lambda e: built.setdefault(e.pk, backend_for(e)))  # fmt: skip
    reasoner = ModelEndpoint.objects.create(
        name="scripted reasoner", backend="scripted", role="reasoner", model=str(tiny_model_path),
        extra={"completions": [FIRST, SOLVE]},
    )  # fmt: skip
    clean = json.dumps({"flawless": True, "rationale": "solved"})
    intervener = ModelEndpoint.objects.create(
        name="scripted intervener", backend="scripted", role="intervener",
        model=str(tiny_model_path),
        extra={"chat_rules": [["OBJECTIVE_VALUE: 4100", clean], ["", verdict(2)]]},
    )  # fmt: skip
    batch = batch_create(name="b", problems=[problem], reasoner=reasoner, intervener=intervener,
                         config={"max_interventions": 2, "intervener_mode": "both"},
                         enqueue=False)  # fmt: skip
    for _ in range(10):
        if not batch_advance(batch_id=batch.pk):
            break
    item = BatchItem.objects.get(batch=batch)
    assert (item.outcome, item.rounds) == ("candidate", 1), item.error
    first = BatchRound.objects.get(item=item).diagnosis
    assert (first.source, first.check_name, first.step_index) == ("checks", "unavailable_solver", 1)
    hint = Hint.objects.get(branch=item.trajectory)
    assert "gurobipy is not available in this sandbox" in hint.text
    assert item.trajectory.is_correct is True
    assert item.trajectory.diagnoses.get().source == "llm"  # flawless, nothing for a check
    table = by_source(batch)
    assert table["broken_code"]["checks"] == {"fired": 1, "hinted": 1, "correct": 1}
    assert table["manual_computation"]["checks"] == {"fired": 1, "hinted": 0, "correct": 0}
    assert table["broken_code"]["llm"] == {"verdicts": 0, "hinted": 0, "correct": 0}


def test_an_endpoints_checks_override_is_validated_and_used(make_trajectory, intervener_endpoint):
    from django.core.exceptions import ValidationError

    endpoint = intervener_endpoint(verdict(2))
    endpoint.prompts = {"checks": {"unavailable_solvers": {"enabled": False}}}
    with pytest.raises(ValidationError, match="unknown check 'unavailable_solvers'"):
        endpoint.full_clean()
    endpoint.prompts = {"checks": {"unavailable_solver": {"enabled": False},
                                   "no_solver_call": {"hint": "By hand: {no_solve}."}}}  # fmt: skip
    endpoint.full_clean()
    endpoint.save()
    got = Intervener(endpoint, mode="checks").ask(make_trajectory(steps_with_a_missing_solver()))
    assert [f["check"] for f in got.findings] == ["answer_after_failure", "no_solver_call"]
    assert got.findings[1]["hint"] == "By hand: none of my 2 code cell(s) called a solver."
