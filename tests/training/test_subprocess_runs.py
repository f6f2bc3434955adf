"""Runs end to end through the worker's supervisor, with real subprocesses and real TRL steps
on the tiny model on the CPU: metrics reach the database, checkpoints are registered, an
evaluation scores them, GRPO rollouts run code in the sandbox with interpreter tokens masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.engine import Tag
from curation.models import Job, ModelEndpoint, Trajectory
from training.models import EvaluationScore, RunMetric, TrainingRun
from training.services.launcher import run_job_execute
from training.services.runs import problems_select, run_create

from .conftest import THINK_PREFIX_OVERRIDE

pytestmark = pytest.mark.django_db


def execute(run: TrainingRun) -> TrainingRun:
    job = run_job_execute(job_id=run.job_id, worker="test-worker")
    assert job is not None
    run.refresh_from_db()
    return run


def overrides(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


def test_an_sft_run_trains_reports_and_its_checkpoint_evaluates_on_three_problems(
    tiny_endpoint, tiny_dataset, toy_problems
):
    run = run_create(
        kind="sft", name="tiny sft", model=tiny_endpoint, preset="sft_tiny",
        dataset=tiny_dataset, enqueue=False,
    )  # fmt: skip
    run = execute(run)

    assert run.job.status == Job.Status.SUCCEEDED, run.job.error
    assert run.outcome == TrainingRun.Outcome.COMPLETED and run.exit_code == 0
    steps = list(run.metrics.filter(event=RunMetric.Event.STEP).order_by("step"))
    assert [m.step for m in steps] == [1, 2]
    assert all(isinstance(m.values.get("loss"), float) for m in steps)
    assert run.max_steps == 2 and run.step == 2
    assert run.resolved_config["learning_rate"] == 1e-3  # every argument, TRL's included
    assert run.resolved_config["train_file"].endswith("tokens.jsonl")
    assert "step" in run.log_tail or run.log_tail  # the subprocess's output is kept
    # The finished weights are a Reasoner endpoint now.
    endpoint = run.endpoint
    assert endpoint.backend == ModelEndpoint.Backend.TRANSFORMERS
    assert endpoint.model == run.output_dir
    assert (Path(run.output_dir) / "config.json").exists()
    assert (Path(run.output_dir) / "calm_config.yaml").exists()

    evaluation = run_create(
        kind="evaluate", name="tiny eval", model=endpoint, preset="eval_tiny",
        overrides=overrides(THINK_PREFIX_OVERRIDE),
        problem_selection=problems_select(benchmarks=["toy"]), enqueue=False,
    )  # fmt: skip
    evaluation = execute(evaluation)

    assert evaluation.job.status == Job.Status.SUCCEEDED, evaluation.job.error
    score = EvaluationScore.objects.get(run=evaluation)
    # The forced code solves max 3x, x <= 4 (12): right for toy-1 only.
    assert (score.benchmark, score.problems, score.samples) == ("Toy", 3, 3)
    assert score.pass_at_1 == pytest.approx(1 / 3)
    assert evaluation.results["macro_pass_at_1"] == pytest.approx(1 / 3)
    samples = Trajectory.objects.filter(job=evaluation.job).order_by("problem__external_id")
    assert [t.source for t in samples] == [Trajectory.Source.EVALUATED] * 3
    assert [t.is_correct for t in samples] == [True, False, False]
    assert all(t.n_code_calls >= 1 and t.endpoint == endpoint for t in samples)
    assert evaluation.step == evaluation.max_steps == 3


def test_a_grpo_run_executes_code_in_its_rollouts_and_masks_the_interpreter_output(
    tiny_endpoint, toy_problems, tiny_model_path, client_for, lead
):
    run = run_create(
        kind="grpo", name="tiny grpo", model=tiny_endpoint, preset="grpo_tiny",
        overrides=overrides(THINK_PREFIX_OVERRIDE),
        problem_selection=problems_select(benchmarks=["toy"], per_benchmark=2), enqueue=False,
    )  # fmt: skip
    run = execute(run)

    assert run.job.status == Job.Status.SUCCEEDED, run.job.error
    steps = list(run.metrics.filter(event=RunMetric.Event.STEP).order_by("step"))
    assert [m.step for m in steps] == [1, 2]
    for m in steps:
        assert {"reward", "reward_std", "completion_length", "code_calls"} <= set(m.values)
    assert run.endpoint is not None
    page = client_for(lead).get(run.get_absolute_url()).content.decode()
    for chart in ("Reward (mean) and reward spread", "Response length", "Code calls per response"):
        assert f">{chart}" in page

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    rollouts = [
        json.loads(line)
        for line in (Path(run.output_dir) / "rollouts.jsonl").read_text().splitlines()
    ]
    assert len(rollouts) == 2 * 4  # two steps of 2 problems x 2 generations
    for r in rollouts:
        assert r["code_calls"] >= 1
        masked = [i for i, m in zip(r["completion_ids"], r["env_mask"], strict=True) if m == 0]
        interpreter = [
            i for i, t in zip(r["completion_ids"], r["tags"], strict=True) if t == Tag.INTERPRETER
        ]
        # The loss never sees the interpreter's tokens, and sees every token the model wrote.
        assert masked == interpreter
        assert "OBJECTIVE_VALUE: 12.0" in tokenizer.decode(masked)


def test_a_run_that_fails_is_marked_failed_with_the_error_and_the_log(tiny_endpoint, tiny_dataset):
    (Path(tiny_dataset.directory) / "tokens.jsonl").write_text('{"id": "x", "input_ids": [1, 2\n')
    run = run_create(
        kind="sft", name="broken data", model=tiny_endpoint, preset="sft_tiny",
        dataset=tiny_dataset, enqueue=False,
    )  # fmt: skip
    run = execute(run)

    assert run.job.status == Job.Status.FAILED
    assert run.outcome == TrainingRun.Outcome.FAILED and run.exit_code == 1
    assert "line 1" in run.job.error  # the script's own error names the bad line
    assert "Last lines of the log" in run.job.error
    assert run.endpoint is None
