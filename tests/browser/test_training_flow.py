"""Training from the browser with a real worker: an admin launches an SFT run on a golden
dataset, watches it train (real TRL steps on the tiny model, in a subprocess of the worker),
gets its checkpoint as a model endpoint, evaluates that on three problems and drills down from
the score to a sample; and cancels a long run, which stops with a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.models import Job, Trajectory
from tests.polling import wait_for
from tests.training.conftest import THINK_PREFIX_OVERRIDE
from training.models import TrainingRun
from training.services.runs import run_create

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def login(page, live_server):
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", "ada-admin")
    page.fill("input[name=password]", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")


def wait_for_status(page, text: str, timeout_s: float = 180) -> None:
    page.wait_for_selector(f"#run-status:text('{text}')", timeout=timeout_s * 1000)


def test_an_admin_trains_registers_and_evaluates_a_checkpoint(
    live_server, live_worker, page, screenshot, admin_user, tiny_endpoint, tiny_dataset,
    toy_problems,
):  # fmt: skip
    login(page, live_server)
    with page.expect_navigation():
        page.click("nav >> text=Training")
    with page.expect_navigation():
        page.click("#new-sft")
    page.fill("input[name=name]", "golden sft")
    page.select_option("select[name=model]", label="tiny-qwen3")
    page.select_option("select[name=dataset]", label=str(tiny_dataset))
    page.select_option("select[name=preset]", "sft_tiny")
    page.fill("input[name=learning_rate]", "0.002")

    # The preview shows the exact config file the worker will launch, without launching.
    page.click("#preview-button")
    preview = page.locator("#preview-yaml")
    preview.wait_for()
    assert "learning_rate: 0.002" in preview.inner_text()
    assert "train_file:" in preview.inner_text() and "tokens.jsonl" in preview.inner_text()
    assert "training.scripts.sft --config" in page.inner_text("#preview-command")
    assert TrainingRun.objects.count() == 0
    screenshot("sft-preview")

    page.click("#launch-button")
    page.wait_for_url("**/training/runs/*/")
    wait_for_status(page, "Succeeded")
    run = TrainingRun.objects.get(name="golden sft")
    assert run.config["learning_rate"] == 0.002
    assert "step 2 / 2" in page.inner_text("#run-progress")
    assert page.locator("#run-charts svg").count() >= 2  # loss, learning rate, ...
    assert "Training loss" in page.inner_text("#run-charts")
    assert run.endpoint.name in page.inner_text("#run-endpoint")
    screenshot("sft-finished")

    # Evaluate the registered checkpoint on the three toy problems.
    page.goto(f"{live_server.url}/training/new/evaluate")
    page.fill("input[name=name]", "after sft")
    page.select_option("select[name=model]", label=run.endpoint.name)
    page.select_option("select[name=benchmarks]", "toy")
    page.select_option("select[name=preset]", "eval_tiny")
    page.fill("textarea[name=overrides]", THINK_PREFIX_OVERRIDE)
    page.click("#launch-button")
    page.wait_for_url("**/training/runs/*/")
    wait_for_status(page, "Succeeded")
    assert "33.3%" in page.inner_text("#run-macro")

    with page.expect_navigation():
        page.click("nav >> text=Evaluations")
    table = page.inner_text("#evaluation-table")
    assert "Paper: STORM" in table and "68.9" in table and "33.3" in table
    screenshot("evaluations")
    with page.expect_navigation():
        page.click("#evaluation-table a:text('33.3')")
    page.wait_for_selector("#samples-table")
    assert page.locator(".sample-link").count() == 3
    page.click(".sample-link:text('✓')")
    page.wait_for_url("**/trajectories/*/")
    sample = Trajectory.objects.get(pk=int(page.url.rstrip("/").split("/")[-1]))
    assert sample.source == Trajectory.Source.EVALUATED and sample.is_correct


def test_cancelling_a_run_stops_it_with_a_checkpoint(
    live_server, live_worker, page, admin_user, tiny_endpoint, tiny_dataset
):
    run = run_create(
        kind="sft", name="long sft", model=tiny_endpoint, preset="sft_tiny",
        dataset=tiny_dataset, overrides={"max_steps": 5000}, by=admin_user,
    )  # fmt: skip
    login(page, live_server)
    page.goto(f"{live_server.url}{run.get_absolute_url()}")

    def steps_made():
        run.refresh_from_db()
        return run.step >= 3

    wait_for(steps_made, what="the run to make 3 steps", timeout=120, every=0.5)
    page.reload()
    assert page.locator("#run-eta").count() == 1  # steps are timed: an ETA shows
    with page.expect_navigation():
        page.click("#cancel-button")
    wait_for_status(page, "Cancelled")

    def exited():
        run.refresh_from_db()
        return run.exit_code is not None

    wait_for(exited, what="the run to exit after SIGTERM", timeout=120, every=0.5)

    assert run.exit_code == 0 and run.outcome == TrainingRun.Outcome.CANCELLED
    assert run.job.status == Job.Status.CANCELLED
    checkpoint = Path(run.checkpoint)
    assert checkpoint.name == f"checkpoint-{run.step}" and 3 <= run.step < 5000
    assert (checkpoint / "calm_config.yaml").exists() and (checkpoint / "config.json").exists()
    page.reload()
    with page.expect_navigation():
        page.click("#register-button")
    page.wait_for_selector("#run-endpoint")
    run.refresh_from_db()
    assert run.endpoint.model == str(checkpoint)
