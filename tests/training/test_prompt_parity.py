"""Train on the prompt you will be evaluated on: the prompt ids of an SFT record (exactly what
the Reasoner was sent while curating, worked example turn included) equal what evaluation and
GRPO of the checkpoint trained on it send for the same problem. Real tokenizer and chat
template (the tiny Qwen3); the model's turns are a SCRIPTED STAND-IN."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from curation import engine
from curation.engine.backends.scripted import ScriptedBackend

PROMPTS = {
    "system_prompt": "Model it in Pyomo, run it, box the optimum.",
    "worked_example": {
        "problem": "Maximize 2y with y <= 3.",
        "solution": "<think>\n```python\nprint(6)\n```\n```output\n6\n```\n</think>\n\\boxed{6}",
    },
}


@pytest.fixture
def scripted(tiny_model_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    return lambda: ScriptedBackend(tokenizer, lambda req, text: "</think>\n\\boxed{12}")


@pytest.fixture
def curator(db, tiny_model_path):
    """The endpoint the golden data was curated with: its own prompts, a worked example."""
    from curation.models import ModelEndpoint

    return ModelEndpoint.objects.create(
        name="curator", role="reasoner", backend="transformers", model=str(tiny_model_path),
        extra={"device": "cpu", "dtype": "float32"}, prompts=PROMPTS,
    )  # fmt: skip


@pytest.fixture
def sft_record(settings, tmp_path, curator, toy_problems, lead, scripted):
    """The token record of a golden trajectory of toy-1, frozen into a dataset version."""
    from curation.models import Diagnosis
    from curation.services.datasets import dataset_freeze
    from curation.services.endpoints import rollout_config
    from curation.services.reviews import review_decide
    from curation.services.trajectories import trajectory_from_rollout

    settings.VAR_DIR = tmp_path
    problem = toy_problems[0]
    rollout = engine.rollout(scripted(), problem.question, rollout_config(curator))
    trajectory = trajectory_from_rollout(rollout, problem=problem, endpoint=curator)
    trajectory.save()
    Diagnosis.objects.create(trajectory=trajectory, endpoint=curator, status="ok", flawless=True)
    review_decide(trajectory=trajectory, decision="approved", by=lead)
    version = dataset_freeze(name="golden", trajectories=[trajectory])
    line = (Path(version.directory) / "tokens.jsonl").read_text().splitlines()[0]
    return version, json.loads(line)


def _prompt_side(record: dict) -> list[int]:
    """The ids of a record that are context, not trained: the prompt and the forced prefix."""
    n = 0
    while record["token_tags"][n] == 0:
        n += 1
    return record["input_ids"][:n]


def _sent(prompt_ids, completion) -> list[int]:
    """What a rollout sent before the model's first token: prompt + forced prefix (PROMPT)."""
    forced = 0
    while forced < len(completion.tags) and completion.tags[forced] == engine.Tag.PROMPT:
        forced += 1
    return list(prompt_ids) + completion.ids[:forced]


def _checkpoint_of_sft(tiny_endpoint, version, tiny_model_path):
    """An SFT run on the dataset from a base endpoint with the default prompts, its weights
    registered (the tiny model's folder stands for the checkpoint)."""
    from training.services.runs import checkpoint_register, run_create

    assert not tiny_endpoint.prompts  # the base's prompts are not the curator's
    run = run_create(kind="sft", name="s", model=tiny_endpoint, preset="sft_tiny",
                     dataset=version, enqueue=False)  # fmt: skip
    return checkpoint_register(run=run, checkpoint=str(tiny_model_path))


def test_prompt_parity_the_sft_records_prompt_ids_are_what_evaluation_sends(
    sft_record, tiny_endpoint, toy_problems, tiny_model_path, scripted, client_for, lead
):
    from training.scripts import evaluate as ev
    from training.services.launcher import inputs_write
    from training.services.runs import problems_select, run_create

    version, record = sft_record
    assert record["prompts"]["worked_example"] == list(PROMPTS["worked_example"].values())
    # The frozen prompt holds the worked example as the chat template rendered it; a Qwen3
    # template drops an earlier assistant turn's <think> block, so only its answer remains.
    shown = scripted().decode(_prompt_side(record))
    assert "Maximize 2y with y <= 3." in shown and "\\boxed{6}" in shown
    assert "print(6)" not in shown
    checkpoint = _checkpoint_of_sft(tiny_endpoint, version, tiny_model_path)
    toy = problems_select(benchmarks=["toy"])
    run = run_create(kind="evaluate", name="e", model=checkpoint, preset="eval_tiny",
                     problem_selection=toy, enqueue=False)  # fmt: skip
    config = inputs_write(run)
    # The evaluation script as the worker launches it: its run.yaml, nothing added.
    (args,) = ev.make_parser().parse_args_and_config(["--config", str(config)])
    results = ev.evaluate(args, backend=scripted())

    samples = [json.loads(line) for line in (Path(run.output_dir) / "trajectories.jsonl").open()]
    (toy1,) = [s for s in samples if int(s["problem_id"]) == toy_problems[0].pk]
    sent = _sent(toy1["prompt_ids"], engine.TaggedTokens.from_dict(toy1["completion"]))
    assert sent == _prompt_side(record)
    # Recorded on the evaluation: the same prompt set as the dataset's.
    assert results["record"]["prompts"]["id"] == version.prompts["id"] == record["prompts"]["id"]
    # ... and shown beside its figures, where a dataset card's prompt set id can be matched.
    from curation.models import Job
    from training.services.evaluations import evaluation_import

    Job.objects.filter(pk=run.job_id).update(status=Job.Status.SUCCEEDED)
    evaluation_import(run)
    page = client_for(lead).get("/training/evaluations/").content.decode()
    assert "prompt set <code" in page and version.prompts["id"] in page


def test_prompt_parity_grpo_of_the_checkpoint_sends_the_same_prompt(
    sft_record, tiny_endpoint, toy_problems, tiny_model_path, scripted
):
    from training.scripts.grpo import EngineRollout, parse_args
    from training.services.launcher import inputs_write
    from training.services.runs import problems_select, run_create

    version, record = sft_record
    checkpoint = _checkpoint_of_sft(tiny_endpoint, version, tiny_model_path)
    toy = problems_select(benchmarks=["toy"])
    run = run_create(kind="grpo", name="g", model=checkpoint, preset="grpo_tiny",
                     problem_selection=toy, enqueue=False)  # fmt: skip
    script_args, training_args, _ = parse_args(["--config", str(inputs_write(run))])
    rollout = EngineRollout(script_args)
    trainer = SimpleNamespace(args=training_args)

    (r,) = engine.rollout_many(
        scripted(), [toy_problems[0].question], rollout.rollout_config(trainer)
    )
    assert _sent(r.prompt_ids, r.completion) == _prompt_side(record)
    # The GRPO run's own checkpoint keeps the prompts it rolled out with.
    from curation.services.endpoints import endpoint_prompt_record
    from training.services.runs import checkpoint_register

    after_grpo = checkpoint_register(run=run, checkpoint=str(tiny_model_path))
    assert endpoint_prompt_record(after_grpo)["id"] == record["prompts"]["id"]
