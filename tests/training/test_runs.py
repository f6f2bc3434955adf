"""Creating runs, their problem sets, relaunching, registering checkpoints, and the
evaluation table beside the paper's. No subprocess here."""

from __future__ import annotations

import pytest

from curation.models import Job, ModelEndpoint
from training.models import EvaluationScore, TrainingRun
from training.selectors import evaluation_table
from training.services.runs import (
    RunError,
    checkpoint_register,
    problems_select,
    run_cancel,
    run_create,
    run_relaunch,
)

pytestmark = pytest.mark.django_db


def test_a_run_is_a_queued_gpu_job_with_its_config_and_folder(
    settings, tiny_endpoint, tiny_dataset
):
    run = run_create(
        kind="sft", name="s", model=tiny_endpoint, preset="sft_tiny", dataset=tiny_dataset,
        fields={"learning_rate": 3e-3}, enqueue=False,
    )  # fmt: skip
    assert run.job.kind == Job.Kind.SFT and run.job.queue == "gpu"
    assert run.job.status == Job.Status.QUEUED and run.job.params == {"run_id": run.pk}
    assert run.output_dir == str(settings.TRAINING_RUNS_DIR / f"{run.pk}-sft")
    assert run.config["output_dir"] == run.output_dir
    assert run.config["learning_rate"] == 3e-3
    assert run.config["train_file"] == f"{tiny_dataset.directory}/tokens.jsonl"
    assert run.config["model_name_or_path"] == tiny_endpoint.model


def test_runs_refuse_what_cannot_work(tiny_endpoint, toy_problems):
    server = ModelEndpoint.objects.create(name="srv", backend="openai", model="m", base_url="u")
    with pytest.raises(RunError, match="choose a golden dataset"):
        run_create(kind="sft", name="s", model=tiny_endpoint, preset="sft_tiny", enqueue=False)
    with pytest.raises(RunError, match="needs local weights"):
        run_create(
            kind="grpo", name="g", model=server, preset="grpo_tiny", enqueue=False,
            problem_selection=problems_select(benchmarks=["toy"]),
        )  # fmt: skip
    with pytest.raises(RunError, match="choose the problems"):
        run_create(kind="evaluate", name="e", model=server, preset="eval", enqueue=False)
    with pytest.raises(RunError, match="no problems"):
        problems_select(benchmarks=["nothing-here"])
    assert not TrainingRun.objects.exists() and not Job.objects.exists()


def test_a_problem_set_is_a_seeded_sample_per_benchmark_frozen_as_ids(toy_problems):
    first = problems_select(benchmarks=["toy"], per_benchmark=2, seed=7)
    assert first == problems_select(benchmarks=["toy"], per_benchmark=2, seed=7)
    assert len(first["problem_ids"]) == 2
    assert set(first["problem_ids"]) <= {p.pk for p in toy_problems}
    assert len(problems_select(benchmarks=["toy"])["problem_ids"]) == 3


def test_a_relaunch_repeats_the_settings_in_a_new_folder(tiny_endpoint, toy_problems):
    run = run_create(
        kind="evaluate", name="e", model=tiny_endpoint, preset="eval_tiny", fields={"k": 3},
        overrides={"top_p": 0.5}, problem_selection=problems_select(benchmarks=["toy"]),
        enqueue=False,
    )  # fmt: skip
    with pytest.raises(RunError, match="still active"):
        run_relaunch(run=run)
    run_cancel(run=run)
    again = run_relaunch(run=TrainingRun.objects.get(pk=run.pk))
    assert again.pk != run.pk and again.output_dir != run.output_dir
    same = {
        k: v for k, v in run.config.items() if k not in ("output_dir", "problems", "endpoint_spec")
    }
    assert {k: again.config[k] for k in same} == same
    assert again.problem_selection == run.problem_selection


def test_a_checkpoint_is_registered_once_as_a_transformers_reasoner(tiny_endpoint, tiny_dataset):
    run = run_create(
        kind="sft", name="s", model=tiny_endpoint, preset="sft_tiny", dataset=tiny_dataset,
        enqueue=False,
    )  # fmt: skip
    with pytest.raises(RunError, match="no checkpoint"):
        checkpoint_register(run=run)
    run.outcome, run.checkpoint = TrainingRun.Outcome.CANCELLED, "/runs/x/checkpoint-7"
    endpoint = checkpoint_register(run=run)
    assert (
        endpoint.model == "/runs/x/checkpoint-7"
        and endpoint.name == f"s (run #{run.pk}, checkpoint-7)"
    )
    assert endpoint.backend == "transformers" and endpoint.can_reason
    assert endpoint.extra == {"device": "cpu", "dtype": "float32"}
    assert checkpoint_register(run=TrainingRun.objects.get(pk=run.pk)) == endpoint


def test_the_evaluation_table_puts_runs_beside_the_paper(tiny_endpoint, toy_problems):
    run = run_create(
        kind="evaluate", name="e", model=tiny_endpoint, preset="eval_tiny",
        problem_selection=problems_select(benchmarks=["toy"]), enqueue=False,
    )  # fmt: skip
    EvaluationScore.objects.create(
        run=run, benchmark="NL4Opt", problems=10, samples=40, pass_at_1=0.7
    )
    EvaluationScore.objects.create(run=run, benchmark="Toy", problems=3, samples=3, pass_at_1=0.5)
    failed = run_create(
        kind="evaluate", name="f", model=tiny_endpoint, preset="eval_tiny",
        problem_selection=problems_select(benchmarks=["toy"]), enqueue=False,
    )  # fmt: skip
    EvaluationScore.objects.create(run=failed, benchmark="Toy", problems=3, samples=3, pass_at_1=1)
    Job.objects.filter(pk=failed.job_id).update(status=Job.Status.FAILED)

    table = evaluation_table()
    benchmarks, rows = table.benchmarks, table.rows
    assert benchmarks == ["NL4Opt", "MAMO-EasyLP", "MAMO-ComplexLP", "IndustryOR", "OptMATH", "Toy"]
    assert [r.label for r in rows] == [
        "Paper: Qwen3-4B-Thinking-2507", "Paper: STORM (CALM SFT + GRPO, 4B)", "tiny-qwen3",
    ]  # fmt: skip
    assert rows[1].cells[:5] == [70.3, 85.9, 68.3, 63.5, 56.3] and rows[1].macro == 68.9
    ours = rows[2]
    assert ours.cells == [70.0, None, None, None, None, 50.0]
    assert ours.macro == pytest.approx(60.0) and ours.macro_over == 2
    assert ours.items[0][:2] == (70.0, "NL4Opt") and ours.items[1] == (None, None, None)
