"""Fixtures for the training app: the tiny model as an endpoint, a frozen dataset of CALM-
shaped records in its vocabulary, toy problems whose code the sandbox solves, run folders in
a temporary directory."""

from __future__ import annotations

import json

import pytest

from curation.models import Benchmark, DatasetVersion, ModelEndpoint, Problem
from tests.training.scripts.conftest import CODE_PREFIX, tagged_record

# The model writes no code by itself: this forced start of the turn carries a Pyomo model that
# the sandbox solves to 12, so "Maximize 3x, x <= 4" is answered right and the others wrong.
# The forced code solves the toy problems, but a random model never boxes the answer: these
# runs credit the sandbox's solve explicitly (off by default).
THINK_PREFIX_OVERRIDE = "think_prefix: " + json.dumps(CODE_PREFIX) + "\ncredit_sandbox_answer: true"
TOY = [("toy-1", 4, 12.0), ("toy-2", 5, 15.0), ("toy-3", 2, 6.0)]


@pytest.fixture(autouse=True)
def _runs_in_tmp(settings, tmp_path):
    settings.TRAINING_RUNS_DIR = tmp_path / "runs"
    settings.TRAINING_POLL_S = 0.2


@pytest.fixture
def tiny_endpoint(db, tiny_model_path):
    return ModelEndpoint.objects.create(
        name="tiny-qwen3", role=ModelEndpoint.Role.REASONER, backend="transformers",
        model=str(tiny_model_path), extra={"device": "cpu", "dtype": "float32"},
    )  # fmt: skip


@pytest.fixture
def tiny_dataset(db, tmp_path, tiny_model_path):
    """A frozen dataset version whose tokens.jsonl holds six records in the tiny vocabulary."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    folder = tmp_path / "dataset"
    folder.mkdir()
    lines = []
    for i in range(6):
        ids, tags = tagged_record(tokenizer, i)
        lines.append(json.dumps({"id": f"t-{i}", "input_ids": ids, "token_tags": tags}))
    (folder / "tokens.jsonl").write_text("\n".join(lines) + "\n")
    return DatasetVersion.objects.create(
        name="golden-v1", content_hash="0" * 64, counts={"trajectories": 6},
        directory=str(folder),
    )  # fmt: skip


@pytest.fixture
def toy_problems(db):
    bench = Benchmark.objects.create(name="Toy", slug="toy")
    return [
        Problem.objects.create(
            benchmark=bench,
            external_id=ext,
            question=f"Maximize 3x with 0 <= x <= {bound}.",
            answer=answer,
            answer_status="value",
            content_hash=ext,
        )
        for ext, bound, answer in TOY
    ]


@pytest.fixture
def run(tiny_endpoint, tiny_dataset):
    """A queued SFT run of the tiny model on the tiny dataset (not sent to any worker)."""
    from training.services.runs import run_create

    return run_create(
        kind="sft", name="s", model=tiny_endpoint, preset="sft_tiny", dataset=tiny_dataset,
        enqueue=False,
    )  # fmt: skip


# Scripted answers (a SCRIPTED STAND-IN for the model) to the toy problems. toy-1: right under
# every rule; toy-2: 2% off (ORLM accepts, SIRL does not); toy-3: no answer.
REPLIES = {"<= 4.": "</think>\n\\boxed{12}", "<= 5.": "</think>\n\\boxed{15.3}", "<= 2.": "hmm"}


def evaluate_scripted(run, tiny_model_path, *, rule="sirl", replies=None, **arguments):
    """Run the real evaluation script on ``run``'s problems with the scripted answers, mark
    the job finished and import the results."""
    from transformers import AutoTokenizer

    from curation.engine.backends.scripted import ScriptedBackend
    from curation.models import Job
    from training.scripts import evaluate as ev
    from training.services.evaluations import evaluation_import
    from training.services.launcher import inputs_write

    inputs_write(run)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    backend = ScriptedBackend(
        tokenizer,
        lambda req, text: next(v for k, v in (replies or REPLIES).items() if k in text),
    )
    args = ev.EvaluateArguments(
        model=str(tiny_model_path), problems=[f"{run.output_dir}/problems.jsonl"],
        output_dir=run.output_dir, k=2, rule=rule, batch_size=1, **arguments,
    )  # fmt: skip
    ev.evaluate(args, backend=backend)
    Job.objects.filter(pk=run.job_id).update(status=Job.Status.SUCCEEDED)
    evaluation_import(run)
    run.refresh_from_db()
    return run


@pytest.fixture
def finished_eval(tiny_endpoint, toy_problems, tiny_model_path):
    """A finished evaluation of the toy problems (k = 2, rule sirl), imported."""
    from training.services.runs import problems_select, run_create

    run = run_create(
        kind="evaluate", name="e", model=tiny_endpoint, preset="eval_tiny",
        problem_selection=problems_select(benchmarks=["toy"]), enqueue=False,
    )  # fmt: skip
    return evaluate_scripted(run, tiny_model_path)
