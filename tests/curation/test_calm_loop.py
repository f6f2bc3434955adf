"""The CALM loop over a batch, with the tiny real model as the Reasoner and the engine's
scripted stand-in for a language model as the Intervener (it "reads" the trajectory through
rules: a flaw until the sandbox printed the right objective, then flawless)."""

from __future__ import annotations

import json

import pytest

from curation.models import Batch, BatchItem, BatchRound, FlawLabel, Hint, ModelEndpoint
from curation.services.batches import (
    batch_advance,
    batch_cancel,
    batch_create,
    batch_pause,
    batch_problems,
    batch_progress,
    batch_resume,
)

# Committed writes: the driver heartbeats its items from a thread with its own connection.
pytestmark = pytest.mark.django_db(transaction=True)

# A hint in the Reasoner's voice that writes and runs the right model of demo-01 (4100).
FIX = (
    "Wait, I should let the solver do it.\n```python\nimport pyomo.environ as pyo\n"
    "m = pyo.ConcreteModel()\nm.t = pyo.Var(domain=pyo.NonNegativeReals)\n"
    "m.c = pyo.Var(domain=pyo.NonNegativeReals)\n"
    "m.a = pyo.Constraint(expr=4 * m.t + 3 * m.c <= 240)\n"
    "m.b = pyo.Constraint(expr=2 * m.t + m.c <= 100)\n"
    "m.o = pyo.Objective(expr=70 * m.t + 50 * m.c, sense=pyo.maximize)\n"
    "pyo.SolverFactory('appsi_highs').solve(m)\nprint('OBJECTIVE_VALUE:', pyo.value(m.o))\n```\n"
)
FLAW = {"flawless": False, "step": 0, "flaw_type": "delayed_code_use", "hint": FIX,
        "rationale": "It never runs a solver."}  # fmt: skip
CLEAN = {"flawless": True, "step": None, "flaw_type": None, "hint": None, "rationale": "ok"}


@pytest.fixture
def endpoints(tiny_model_path, taxonomy):
    # A random model never boxes an answer: these orchestration tests credit the sandbox's
    # objective instead, the setting that is off by default (CALM_CREDIT_SANDBOX_ANSWER).
    reasoner = ModelEndpoint.objects.create(
        name="tiny", backend="transformers", model=str(tiny_model_path),
        sampling={"temperature": 0.0, "max_new_tokens": 400, "credit_sandbox_answer": True},
        extra={"device": "cpu"},
    )  # fmt: skip

    def intervener(rules):
        return ModelEndpoint.objects.create(
            name=f"scripted-{len(rules)}", backend="scripted", role="intervener",
            model=str(tiny_model_path), extra={"chat_rules": rules},
        )  # fmt: skip

    return reasoner, intervener


@pytest.fixture(autouse=True)
def sent(monkeypatch):
    """The batches whose driver task was queued. Nothing reaches Redis: these tests drive the
    batch themselves, and a session's live worker (tests/conftest.py) would otherwise take the
    task and race them for the items."""
    queued: list[int] = []
    monkeypatch.setattr(
        "curation.services.batches.batch_send", lambda batch: queued.append(batch.pk)
    )
    return queued


def run_to_the_end(batch: Batch, limit: int = 30) -> None:
    for _ in range(limit):
        if not batch_advance(batch_id=batch.pk):
            return
    raise AssertionError("the batch did not finish")


def test_a_flaw_is_found_hinted_fixed_and_becomes_a_golden_candidate(problem, endpoints):
    reasoner, make_intervener = endpoints
    intervener = make_intervener(
        [["OBJECTIVE_VALUE: 4100", json.dumps(CLEAN)], ["", json.dumps(FLAW)]]
    )
    batch = batch_create(name="b", problems=[problem], reasoner=reasoner,
                         intervener=intervener, enqueue=False)  # fmt: skip
    run_to_the_end(batch)
    batch.refresh_from_db()
    item = BatchItem.objects.get(batch=batch)
    assert (batch.status, item.state, item.outcome, item.rounds) == (
        "done", "done", "candidate", 1)  # fmt: skip
    assert item.root.is_correct is False and item.trajectory.is_correct is True
    assert item.trajectory.parent == item.root  # every branch is kept and reviewable
    hint = Hint.objects.get(branch=item.trajectory)
    assert (
        hint.author_endpoint == intervener and hint.diagnosis.flaw_type.code == "delayed_code_use"
    )
    round_ = BatchRound.objects.get(item=item)
    assert (round_.number, round_.fixed) == (1, True)
    assert FlawLabel.objects.filter(trajectory=item.root, source="model").count() == 1
    progress = batch_progress(batch)
    assert progress["by_outcome"]["candidate"] == 1
    assert progress["rounds"] == [{"round": 1, "interventions": 1, "fixed": 1}]


def test_the_intervention_cap_is_honoured(problem, endpoints):
    reasoner, make_intervener = endpoints
    always_flawed = {**FLAW, "hint": "Let me think again."}
    intervener = make_intervener([["", json.dumps(always_flawed)]])
    batch = batch_create(name="b", problems=[problem], reasoner=reasoner, intervener=intervener,
                         config={"max_interventions": 2}, enqueue=False)  # fmt: skip
    run_to_the_end(batch)
    item = BatchItem.objects.get(batch=batch)
    assert (item.outcome, item.rounds) == ("cap_reached", 2)
    assert BatchRound.objects.filter(item=item).count() == 2


def test_garbage_from_the_intervener_ends_the_item_as_a_recorded_error(problem, endpoints):
    reasoner, make_intervener = endpoints
    intervener = make_intervener([["", "I think it is fine!!"]])
    batch = batch_create(name="b", problems=[problem], reasoner=reasoner,
                         intervener=intervener, enqueue=False)  # fmt: skip
    run_to_the_end(batch)
    item = BatchItem.objects.get(batch=batch)
    assert (item.state, item.outcome, item.error_kind) == ("failed", "error", "intervener_output")
    assert "I think it is fine!!" in item.trajectory.diagnoses.get().raw


def test_pause_resume_and_cancel(problem, endpoints):
    reasoner, make_intervener = endpoints
    intervener = make_intervener([["", json.dumps(CLEAN)]])
    batch = batch_create(name="b", problems=[problem], reasoner=reasoner, intervener=intervener,
                         config={"samples_per_problem": 3}, enqueue=False)  # fmt: skip
    assert batch_pause(batch=batch)
    assert batch_advance(batch_id=batch.pk) is False  # a paused batch claims nothing
    assert set(BatchItem.objects.values_list("state", flat=True)) == {"waiting"}
    assert batch_resume(batch=batch, enqueue=False)
    batch_advance(batch_id=batch.pk)
    assert BatchItem.objects.filter(phase="diagnose").count() == 3
    assert batch_cancel(batch=batch)
    assert batch_advance(batch_id=batch.pk) is False
    batch.refresh_from_db()
    assert batch.status == "cancelled"


def test_a_selection_samples_problems_reproducibly(problem):
    from curation.models import Problem

    for i in range(9):
        Problem.objects.create(benchmark=problem.benchmark, external_id=f"x{i}", question="q",
                               answer=1, content_hash=str(i))  # fmt: skip
    first = batch_problems(benchmarks=["calm-demo"], sample_size=4, seed=7)
    again = batch_problems(benchmarks=["calm-demo"], sample_size=4, seed=7)
    assert [p.pk for p in first] == [p.pk for p in again] and len(first) == 4


def test_the_batch_pages_show_progress_and_figures_and_leads_steer_them(
    problem, endpoints, client_for, lead, reviewer, sent
):
    from django.urls import reverse

    reasoner, make_intervener = endpoints
    intervener = make_intervener(
        [["OBJECTIVE_VALUE: 4100", json.dumps(CLEAN)], ["", json.dumps(FLAW)]]
    )
    client = client_for(lead)
    response = client.post(
        reverse("curation-batch-new"),
        {"name": "demo run", "benchmarks": ["calm-demo"], "seed": 0, "reasoner": reasoner.pk,
         "intervener": intervener.pk, "samples_per_problem": 1, "max_interventions": 5,
         "answer_rule": "relative", "answer_tolerance": 1e-6, "concurrency": 4},
    )  # fmt: skip
    batch = Batch.objects.get()
    assert response["Location"] == batch.get_absolute_url()
    assert batch.selection["benchmarks"] == ["calm-demo"] and batch.config["concurrency"] == 4
    assert sent == [batch.pk]  # the form started the batch's driver
    run_to_the_end(batch)
    client.force_login(reviewer)
    page = client.get(batch.get_absolute_url()).content.decode()
    assert 'id="outcome-candidate">1<' in page and "<svg" in page
    assert "Interventions per round: round 1: 1 (1 fixed)" in page
    fragment = client.get(batch.get_absolute_url(), headers={"HX-Request": "true"}).content
    assert b"<html" not in fragment and fragment.strip().startswith(b'<div id="batch-progress"')
    # Reviewers watch; only leads steer.
    assert (
        client.post(reverse("curation-batch-control", args=[batch.pk, "pause"])).status_code == 403
    )
    assert client.get(reverse("curation-batch-new")).status_code == 403


def test_approved_candidates_freeze_into_a_versioned_dataset_loadable_with_datasets(
    problem, endpoints, lead, client_for, tmp_path, settings
):
    import datasets
    from django.core.management import call_command
    from django.urls import reverse

    from curation.models import DatasetVersion
    from curation.selectors.datasets import golden_trajectories
    from curation.services.reviews import review_decide

    settings.VAR_DIR = tmp_path
    reasoner, make_intervener = endpoints
    intervener = make_intervener(
        [["OBJECTIVE_VALUE: 4100", json.dumps(CLEAN)], ["", json.dumps(FLAW)]]
    )
    batch = batch_create(name="b", problems=[problem], reasoner=reasoner,
                         intervener=intervener, enqueue=False)  # fmt: skip
    run_to_the_end(batch)
    candidate = BatchItem.objects.get(batch=batch).trajectory
    assert not golden_trajectories().exists()  # a candidate is golden only once approved
    review_decide(trajectory=candidate, decision="approved", by=lead)
    assert list(golden_trajectories()) == [candidate]

    response = client_for(lead).post(
        reverse("curation-dataset-freeze"), {"name": "golden v1", "train_on_hints": "on"}
    )
    version = DatasetVersion.objects.get()
    assert response["Location"] == version.get_absolute_url()
    assert version.counts["trajectories"] == 1 and len(version.content_hash) == 64
    out = tmp_path / "export"
    call_command("export_dataset", "--dataset", str(version.pk), "--out", str(out))
    rows = datasets.load_dataset("json", data_files=str(out / "tokens.jsonl"), split="train")
    record = rows[0]
    for token, tag, label in zip(record["input_ids"], record["token_tags"], record["labels"],
                                 strict=True):  # fmt: skip
        assert label == (token if tag in (1, 3) else -100)
    chat = datasets.load_dataset("json", data_files=str(out / "chat.jsonl"), split="train")
    assert "OBJECTIVE_VALUE: 4100" in chat[0]["messages"][-1]["content"]
    card = (out / "README.md").read_text()
    assert version.content_hash in card and "Sources and licences" in card
    # Freezing the same set again gives the same content hash (the export is deterministic).
    call_command("export_dataset", "--freeze", "golden v2")
    assert DatasetVersion.objects.latest("pk").content_hash == version.content_hash
    page = client_for(lead).get(version.get_absolute_url()).content.decode()
    assert page.count("<svg") >= 2 and "Token modification ratio" in page
    download = client_for(lead).get(reverse("curation-dataset-download",
                                            args=[version.pk, "tokens.jsonl"]))  # fmt: skip
    assert download.status_code == 200 and b"input_ids" in b"".join(download.streaming_content)


def test_golden_candidates_can_be_reviewed_on_their_own(problem, endpoints, client_for, reviewer):
    from django.urls import reverse

    reasoner, make_intervener = endpoints
    intervener = make_intervener(
        [["OBJECTIVE_VALUE: 4100", json.dumps(CLEAN)], ["", json.dumps(FLAW)]]
    )
    batch = batch_create(name="b", problems=[problem], reasoner=reasoner,
                         intervener=intervener, enqueue=False)  # fmt: skip
    run_to_the_end(batch)
    candidate = BatchItem.objects.get(batch=batch).trajectory
    response = client_for(reviewer).get(reverse("curation-review-queue"), {"candidates": "yes"})
    assert [t.pk for t in response.context["page"]] == [candidate.pk]
    everything = client_for(reviewer).get(reverse("curation-review-queue"))
    assert everything.context["page"].paginator.count == 2  # the root is reviewable too


def test_a_sandbox_that_cannot_start_fails_the_item_as_infrastructure_not_the_model(
    problem, endpoints, tiny_model_path, sandbox_without_bubblewrap
):
    _, make_intervener = endpoints
    reasoner = ModelEndpoint.objects.create(
        name="scripted-reasoner", backend="scripted", model=str(tiny_model_path),
        extra={"completions": ["Solve.\n```python\nprint('OBJECTIVE_VALUE: 4100')\n```\nDone."]},
    )  # fmt: skip
    batch = batch_create(name="b", problems=[problem], reasoner=reasoner,
                         intervener=make_intervener([["", json.dumps(CLEAN)]]),
                         enqueue=False)  # fmt: skip
    batch_advance(batch_id=batch.pk)
    item = BatchItem.objects.get(batch=batch)
    assert item.error_kind == "infrastructure" and item.trajectory is None
    assert "bwrap not installed" in item.error and item.outcome != "wrong_flawless"
    assert not FlawLabel.objects.exists()  # nothing was diagnosed
