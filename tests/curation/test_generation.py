"""Generating, continuing and diagnosing trajectories: the Django side of the engine.

The real loop runs the tiny random Qwen3 through the transformers backend and the real solver
sandbox. Exact orchestration cases (a known flaw, malformed Intervener answers) use the
engine's scripted stand-in for a language model, named as such.
"""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from curation import engine
from curation.models import Diagnosis, FlawLabel, Hint, Job, ModelEndpoint, Trajectory
from curation.services.diagnoses import diagnose_job_run, diagnosis_request
from curation.services.hints import continue_job_run, hint_insert
from curation.services.trajectories import generate_job_run, trajectories_generate

pytestmark = pytest.mark.django_db

CODE_HINT = (
    "I should solve it with code.\n```python\nimport pyomo.environ as pyo\n"
    "m = pyo.ConcreteModel()\nm.x = pyo.Var(bounds=(0, 4))\n"
    "m.o = pyo.Objective(expr=3 * m.x, sense=pyo.maximize)\n"
    "pyo.SolverFactory('appsi_highs').solve(m)\nprint('OBJECTIVE_VALUE:', pyo.value(m.o))\n```\n"
)


@pytest.fixture
def tiny_reasoner(tiny_model_path):
    return ModelEndpoint.objects.create(
        name="tiny",
        backend="transformers",
        model=str(tiny_model_path),
        sampling={"temperature": 0.0, "max_new_tokens": 300},
        is_default_reasoner=True,
        extra={"device": "cpu"},
    )


def scripted(tiny_model_path, name="scripted", **extra) -> ModelEndpoint:
    return ModelEndpoint.objects.create(
        name=name,
        backend="scripted",
        model=str(tiny_model_path),
        tokenizer=str(tiny_model_path),
        extra=extra,
    )


def test_it_generates_trajectories_with_a_real_model(problem, tiny_reasoner):
    job = trajectories_generate(
        problems=[problem],
        endpoint=tiny_reasoner,
        samples=2,
        config={"max_new_tokens": 40},
        enqueue=False,
    )
    done = generate_job_run(job_id=job.pk, worker="test")
    assert done.status == Job.Status.SUCCEEDED, done.error
    trajectories = list(Trajectory.objects.filter(job=job).order_by("job_index"))
    assert [t.job_index for t in trajectories] == [0, 1]
    t = trajectories[0]
    completion = engine.TaggedTokens.from_bytes(bytes(t.completion_tokens))
    forced = completion.count(engine.Tag.PROMPT)  # the think prefix: prompt side
    assert forced == 2 and set(completion.tags[:forced]) == {engine.Tag.PROMPT}
    assert len(completion) == forced + t.n_model_tokens + t.n_interpreter_tokens + t.n_hint_tokens
    assert t.n_model_tokens > 0 and t.finish_reason in ("budget", "eos")
    assert t.is_correct is False  # a random model does not answer 4100
    # Running the same job again (a redelivered message) adds nothing.
    Job.objects.filter(pk=job.pk).update(status=Job.Status.QUEUED)
    generate_job_run(job_id=job.pk, worker="test")
    assert Trajectory.objects.filter(job=job).count() == 2


def test_a_hint_makes_a_branch_that_keeps_the_prefix_and_runs_the_hinted_code(
    problem, tiny_reasoner
):
    job = trajectories_generate(problems=[problem], endpoint=tiny_reasoner, enqueue=False)
    parent = Trajectory.objects.get(job=generate_job_run(job_id=job.pk, worker="t"))
    hint = hint_insert(trajectory=parent, step_index=0, char_offset=0, text=CODE_HINT,
                       by_user=None, enqueue=False)  # fmt: skip
    done = continue_job_run(job_id=hint.job_id, worker="t")
    assert done.status == Job.Status.SUCCEEDED, done.error
    hint.refresh_from_db()
    child = hint.branch
    assert (child.parent, child.branch_step, child.source) == (parent, 0, "hinted")
    parent_tokens = engine.TaggedTokens.from_bytes(bytes(parent.completion_tokens))
    child_tokens = engine.TaggedTokens.from_bytes(bytes(child.completion_tokens))
    cut = hint.token_offset
    assert child_tokens[:cut] == parent_tokens[:cut]  # token-identical prefix
    assert child_tokens.tags[cut] == engine.Tag.HINT
    assert child.n_hint_tokens > 0 and child.n_code_calls >= 1
    ran = [s for s in child.steps if s["code"]]
    assert ran[0]["result"]["status"] == "ok"
    assert ran[0]["result"]["objective"] == pytest.approx(12.0)
    assert "OBJECTIVE_VALUE: 12" in ran[0]["output"]
    assert 0 < child.token_modification_ratio < 1


def test_the_intervener_verdict_becomes_a_model_label(problem, make_trajectory, tiny_model_path,
                                                       taxonomy):  # fmt: skip
    t = make_trajectory()
    verdict = {"flawless": False, "step": 0, "flaw_type": "manual_computation",
               "hint": "Use code for the arithmetic.", "rationale": "Hand arithmetic."}  # fmt: skip
    intervener = scripted(tiny_model_path, chat_replies=[json.dumps(verdict)])
    job = diagnosis_request(trajectory=t, endpoint=intervener, enqueue=False)
    assert diagnose_job_run(job_id=job.pk, worker="t").status == Job.Status.SUCCEEDED
    d = Diagnosis.objects.get(job=job)
    assert (d.status, d.flawless, d.step_index, d.flaw_type.code) == (
        "ok", False, 0, "manual_computation")  # fmt: skip
    label = FlawLabel.objects.get(trajectory=t)
    assert (label.source, label.author_endpoint, label.step_index) == ("model", intervener, 0)


def test_malformed_intervener_output_is_repaired_once(make_trajectory, tiny_model_path, taxonomy):
    t = make_trajectory()
    good = {"flawless": True, "step": None, "flaw_type": None, "hint": None, "rationale": "ok"}
    intervener = scripted(tiny_model_path, chat_replies=["not json at all", json.dumps(good)])
    job = diagnosis_request(trajectory=t, endpoint=intervener, enqueue=False)
    diagnose_job_run(job_id=job.pk, worker="t")
    d = Diagnosis.objects.get(job=job)
    assert (d.status, d.flawless) == ("ok", True)
    assert not FlawLabel.objects.exists()


def test_garbage_from_the_intervener_is_recorded_as_an_error(
    make_trajectory, tiny_model_path, taxonomy, client_for, reviewer
):
    t = make_trajectory()
    intervener = scripted(tiny_model_path, chat_replies=["<b>garbage</b>", "still garbage"])
    job = diagnosis_request(trajectory=t, endpoint=intervener, enqueue=False)
    assert diagnose_job_run(job_id=job.pk, worker="t").status == Job.Status.SUCCEEDED
    d = Diagnosis.objects.get(job=job)
    assert d.status == "error" and "still garbage" in d.raw
    html = client_for(reviewer).get(t.get_absolute_url()).content.decode()
    assert "Intervener error" in html
    assert "<b>garbage</b>" not in html and "&lt;b&gt;garbage&lt;/b&gt;" in html


def test_an_endpoint_that_keeps_timing_out_fails_the_job_with_the_reason(problem, tiny_model_path):
    flaky = scripted(tiny_model_path, timeouts=99, completions=["never"])
    job = trajectories_generate(problems=[problem], endpoint=flaky, enqueue=False)
    done = generate_job_run(job_id=job.pk, worker="t")
    assert done.status == Job.Status.FAILED
    assert "timed out" in done.error
    assert not Trajectory.objects.exists()


def test_the_commands_generate_diagnose_and_export(problem, tiny_reasoner, capsys, taxonomy):
    call_command("generate", "--benchmark", "CALM Demo", "--limit", "1")
    tid = int(capsys.readouterr().out.strip().splitlines()[-1].split()[-1])
    call_command("export_trajectory", str(tid))
    exported = json.loads(capsys.readouterr().out)
    assert exported["problem"]["reference_answer"] == 4100
    assert exported["tokens"]["model"] > 0
    assert exported["steps"] and "reasoning" in exported["steps"][0]
    assert Hint.objects.count() == 0


def test_token_and_chat_exports_load_with_datasets_and_mask_token_by_token(
    problem, tiny_reasoner, tmp_path
):
    import datasets

    from curation.formats.trajectory_records import trajectory_chat_record, trajectory_token_record

    job = trajectories_generate(problems=[problem], endpoint=tiny_reasoner, enqueue=False)
    parent = Trajectory.objects.get(job=generate_job_run(job_id=job.pk, worker="t"))
    hint = hint_insert(trajectory=parent, step_index=0, char_offset=0, text=CODE_HINT,
                       enqueue=False)  # fmt: skip
    continue_job_run(job_id=hint.job_id, worker="t")
    hint.refresh_from_db()
    branch = hint.branch
    tokens = tmp_path / "tokens.jsonl"
    chat = tmp_path / "chat.jsonl"
    tokens.write_text(
        "\n".join(
            json.dumps(trajectory_token_record(branch, train_on_hints=h)) for h in (True, False)
        )
    )
    chat.write_text(json.dumps(trajectory_chat_record(branch)))
    rows = datasets.load_dataset("json", data_files=str(tokens), split="train")
    with_hints, without_hints = rows[0], rows[1]
    tags = with_hints["token_tags"]
    for i, (token, tag) in enumerate(zip(with_hints["input_ids"], tags, strict=True)):
        trained = tag in (engine.Tag.MODEL, engine.Tag.HINT)
        assert with_hints["labels"][i] == (token if trained else -100), i
        assert without_hints["labels"][i] == (token if tag == engine.Tag.MODEL else -100), i
    assert engine.Tag.INTERPRETER in tags and engine.Tag.HINT in tags
    conversation = datasets.load_dataset("json", data_files=str(chat), split="train")[0]
    assert [m["role"] for m in conversation["messages"]] == ["user", "assistant"]
    assert "```output" in conversation["messages"][1]["content"]
    # The interpreter's output is marked in the chat export: the spans are the text of the
    # INTERPRETER tokens from their ```output fence (a leading newline the engine adds after a
    # fence the model left open is not told apart by text), and it is not for training.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_reasoner.model)
    completion = engine.TaggedTokens.from_bytes(bytes(branch.completion_tokens))
    interpreter = [
        tokenizer.decode(completion.ids[a:b], skip_special_tokens=False)
        for tag, a, b in completion.runs() if tag == engine.Tag.INTERPRETER
    ]  # fmt: skip
    content = conversation["messages"][1]["content"]
    marked = [content[a:b] for a, b in conversation["interpreter_spans"]]
    assert marked == [x.lstrip("\n") for x in interpreter] and marked
    assert conversation["for_training"] is False


CODE_TURN = "Let me solve it.\n```python\nprint('OBJECTIVE_VALUE: 4100')\n```\nSo \\boxed{4100}."


def test_a_sandbox_that_cannot_start_fails_the_job_with_the_infrastructure_reason(
    problem, tiny_model_path, sandbox_without_bubblewrap, taxonomy
):
    """Generation and continuation both: the job fails saying the sandbox could not run code
    (not that the model was wrong), and no trajectory or branch is stored."""
    reasoner = scripted(tiny_model_path, completions=[CODE_TURN])
    job = trajectories_generate(problems=[problem], endpoint=reasoner, enqueue=False)
    done = generate_job_run(job_id=job.pk, worker="t")
    assert done.status == Job.Status.FAILED
    assert "infrastructure: the solver sandbox could not run code" in done.error
    assert "bwrap not installed" in done.error
    assert not Trajectory.objects.exists()


def test_a_continuation_whose_sandbox_cannot_start_fails_as_infrastructure(
    problem, tiny_model_path, sandbox_without_bubblewrap
):
    reasoner = scripted(tiny_model_path, completions=["No code here. \\boxed{1}", "more"])
    job = trajectories_generate(problems=[problem], endpoint=reasoner, enqueue=False)
    assert generate_job_run(job_id=job.pk, worker="t").status == Job.Status.SUCCEEDED
    parent = Trajectory.objects.get(job=job)  # no code ran: the sandbox was not needed
    hint = hint_insert(trajectory=parent, step_index=0, char_offset=0, text=CODE_HINT,
                       endpoint=reasoner, enqueue=False)  # fmt: skip
    done = continue_job_run(job_id=hint.job_id, worker="t")
    assert done.status == Job.Status.FAILED
    assert done.error.startswith("SandboxUnavailableError: infrastructure:")
    hint.refresh_from_db()
    assert hint.branch is None


LEAKY = {"flawless": False, "step": 0, "flaw_type": "manual_computation",
         "hint": "The optimum should be 4,100; let me check with code.",
         "rationale": "Hand arithmetic."}  # fmt: skip
CLEAN_HINT = {**LEAKY, "hint": "I should let a solver do the arithmetic."}


def test_an_intervener_hint_that_states_the_reference_is_sent_back_for_repair_leak(
    make_trajectory, tiny_model_path, taxonomy
):
    t = make_trajectory(is_correct=False, final_answer="4000", final_value=4000.0)
    intervener = scripted(tiny_model_path, chat_replies=[json.dumps(LEAKY), json.dumps(CLEAN_HINT)])
    job = diagnosis_request(trajectory=t, endpoint=intervener, enqueue=False)
    assert diagnose_job_run(job_id=job.pk, worker="t").status == Job.Status.SUCCEEDED
    d = Diagnosis.objects.get(job=job)
    assert (d.status, d.hint) == ("ok", CLEAN_HINT["hint"])
    # The repair request said why; a second leaky answer is an Intervener error, no label.
    t2 = make_trajectory(is_correct=False)
    FlawLabel.objects.all().delete()
    stubborn = scripted(tiny_model_path, name="s2", chat_replies=[json.dumps(LEAKY)] * 2)
    job = diagnosis_request(trajectory=t2, endpoint=stubborn, enqueue=False)
    diagnose_job_run(job_id=job.pk, worker="t")
    d = Diagnosis.objects.get(job=job)
    assert d.status == "error" and "states the reference value (4,100)" in d.error
    assert not FlawLabel.objects.filter(trajectory=t2).exists()


def test_a_persons_hint_that_states_the_reference_needs_a_recorded_confirmation_leak(
    make_trajectory, tiny_model_path, reviewer
):
    from curation.services.hints import HintRevealsAnswer

    t = make_trajectory()
    reasoner = scripted(tiny_model_path)
    text = r"I think it is $4.1 \times 10^3$; let me verify with code."
    with pytest.raises(HintRevealsAnswer, match="states the reference value"):
        hint_insert(trajectory=t, step_index=0, text=text, by_user=reviewer, endpoint=reasoner,
                    enqueue=False)  # fmt: skip
    assert not Hint.objects.exists()
    hint = hint_insert(trajectory=t, step_index=0, text=text, by_user=reviewer,
                       endpoint=reasoner, enqueue=False, confirm_reveal=True)  # fmt: skip
    hint.refresh_from_db()
    assert hint.reveals_value == "4.1e3" and hint.reveal_confirmed_by == reviewer
    assert hint.reveal_confirmed_at is not None
    # A hint with no such number needs nothing and records nothing.
    plain = hint_insert(trajectory=t, step_index=0, text="Use integers for the tables.",
                        by_user=reviewer, endpoint=reasoner, enqueue=False)  # fmt: skip
    assert (plain.reveals_value, plain.reveal_confirmed_by) == ("", None)


def test_the_hint_form_asks_for_the_confirmation_and_records_it_leak(
    make_trajectory, tiny_model_path, reviewer, client_for
):
    scripted(tiny_model_path)  # a Reasoner for the continuation
    t = make_trajectory(endpoint=ModelEndpoint.objects.get())
    client = client_for(reviewer)
    page = client.get(t.get_absolute_url()).content.decode()
    assert 'name="confirm_reveal"' in page
    data = {"step": 0, "text": "The optimum should be 4100."}
    url = reverse("curation-hint-create", args=[t.pk])
    response = client.post(url, data, follow=True)
    assert "states the reference value (4100)" in response.content.decode()
    assert not Hint.objects.exists()
    response = client.post(url, {**data, "confirm_reveal": "1"})
    hint = Hint.objects.get()
    assert response.url == reverse("curation-job-detail", args=[hint.job_id])
    assert (hint.reveals_value, hint.reveal_confirmed_by) == ("4100", reviewer)


def test_a_hint_over_the_token_limit_is_refused_leak(make_trajectory, tiny_model_path, settings):
    from curation.services.trajectories import GenerationError

    settings.CALM_HINT_MAX_TOKENS = 10
    t = make_trajectory()
    with pytest.raises(GenerationError, match="over the limit of 10"):
        hint_insert(trajectory=t, step_index=0, text="word " * 11,
                    endpoint=scripted(tiny_model_path), enqueue=False)  # fmt: skip


@pytest.mark.django_db(transaction=True)  # the heartbeat thread writes through its own connection
def test_a_finished_generation_shows_its_final_count_not_its_first_beat(
    problem, tiny_model_path, settings, client_for, lead
):
    settings.JOB_HEARTBEAT_S = 3600  # the job ends long before a second beat
    reasoner = scripted(tiny_model_path, completions=["Done.</think>\\boxed{4100}"])
    job = trajectories_generate(problems=[problem], endpoint=reasoner, enqueue=False)
    Job.objects.filter(pk=job.pk).update(progress_total=1)  # what one early beat had written
    done = generate_job_run(job_id=job.pk, worker="test")
    assert done.status == Job.Status.SUCCEEDED, done.error
    assert (done.progress_done, done.progress_total) == (1, 1)
    page = client_for(lead).get(reverse("curation-job-detail", args=[job.pk])).content.decode()
    assert "1 / 1 (100%)" in page and "0 / 1" not in page
