"""The review screen in real headless Chromium, with a real worker and the tiny test model:
open a trajectory, expand a step, insert a hint at step 2, watch the branch generate, relabel
a flaw, compare the branches, and approve from the queue with the keyboard."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from curation.models import FlawLabel, ModelEndpoint, ReviewDecision, Trajectory
from curation.services.hints import continue_job_run, hint_insert
from curation.services.trajectories import generate_job_run, trajectories_generate
from tests.curation.test_generation import CODE_HINT

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_step_trajectory(problem, tiny_model_path, taxonomy):
    """A real trajectory of the tiny model with a code step: generated, then hinted in-process."""
    reasoner = ModelEndpoint.objects.create(
        name="tiny", backend="transformers", model=str(tiny_model_path),
        sampling={"temperature": 0.0, "max_new_tokens": 240}, extra={"device": "cpu"},
        is_default_reasoner=True,
    )  # fmt: skip
    job = trajectories_generate(problems=[problem], endpoint=reasoner, enqueue=False)
    root = Trajectory.objects.get(job=generate_job_run(job_id=job.pk, worker="setup"))
    hint = hint_insert(trajectory=root, step_index=0, text=CODE_HINT, enqueue=False)
    continue_job_run(job_id=hint.job_id, worker="setup")
    hint.refresh_from_db()
    assert len(hint.branch.steps) >= 2
    return hint.branch


def login(page, live_server, username="rita-reviewer"):
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")


def test_a_reviewer_hints_a_step_watches_the_branch_and_approves_with_the_keyboard(
    live_server, live_worker, page, screenshot, reviewer, two_step_trajectory
):
    t = two_step_trajectory
    login(page, live_server)
    page.goto(f"{live_server.url}/trajectories/{t.pk}/")
    page.wait_for_selector("#step-1")
    screenshot("trajectory")

    # Toggle an output block; the choice is remembered for the next page.
    output = page.locator("#step-0 details.output").first
    was_open = output.get_attribute("open") is not None
    output.locator("summary").click()
    assert (output.get_attribute("open") is not None) is not was_open
    page.reload()
    page.wait_for_selector("#step-1")
    output = page.locator("#step-0 details.output").first
    assert (output.get_attribute("open") is not None) is not was_open

    # j moves to step 2 (the URL follows); h opens its hint box with the cursor in it.
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(page).to_have_url(re.compile(r"[?&]step=1(&|#|$)"))
    page.keyboard.press("h")
    page.keyboard.type("Wait, the quantities must be integers; let me re-solve.")
    assert page.locator("#step-1 textarea.hint-text").input_value().startswith("Wait")
    screenshot("hint")
    with page.expect_navigation():
        page.locator("#step-1 details.hint-box button[type=submit]").click()

    # The job page shows the continuation live until the worker is done.
    page.wait_for_selector("#job-state")
    page.wait_for_selector("#result-link", timeout=90_000)
    assert page.inner_text("#job-state") == "Succeeded"
    screenshot("branch-generated")
    branch = Trajectory.objects.get(parent=t)
    assert branch.branch_step == 1 and branch.n_hint_tokens > 0

    # The comparison aligns both at the branch point and shows the hint there.
    with page.expect_navigation():
        page.click("text=compare with its parent")
    page.wait_for_selector("tr.branch-row")
    assert "Wait, the quantities must be integers" in page.inner_text("tr.branch-row")
    screenshot("compare")

    # Relabel: focus step 1 of the branch with j and pick flaw type 1 with the keyboard.
    page.goto(f"{live_server.url}/trajectories/{branch.pk}/")
    page.keyboard.press("j")
    page.keyboard.press("1")
    page.wait_for_selector("#step-0 .badge.flaw.human")
    label = FlawLabel.objects.get(trajectory=branch)
    assert (label.step_index, label.flaw_type.code, label.author_user) == (
        0, "manual_computation", reviewer)  # fmt: skip

    # The queue: n opens the next trajectory (locked for this reviewer), a approves it.
    page.goto(f"{live_server.url}/review/")
    with page.expect_navigation():
        page.keyboard.press("n")
    page.wait_for_selector("#pinned")
    first_id = int(page.url.split("/trajectories/")[1].split("/")[0])
    page.keyboard.press("a")  # asks first; Enter confirms
    with page.expect_navigation():
        page.keyboard.press("Enter")
    decision = ReviewDecision.objects.get(trajectory_id=first_id)
    assert (decision.decision, decision.author) == ("approved", reviewer)
    # Approving from the queue moved on to the next trajectory awaiting review.
    assert f"/trajectories/{first_id}/" not in page.url
    screenshot("queue-next")


def test_the_cheat_sheet_opens_and_shortcuts_stay_off_while_typing(
    live_server, page, reviewer, make_trajectory
):
    t = make_trajectory()
    login(page, live_server)
    page.goto(f"{live_server.url}/trajectories/{t.pk}/")
    page.keyboard.press("?")
    expect(page.locator("#cheatsheet")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#cheatsheet")).to_be_hidden()
    page.locator("#step-0 input[name=note]").click()
    page.keyboard.type("jjka")  # typing, not shortcuts: nothing moves, nothing is approved
    assert "step=" not in page.url
    assert not ReviewDecision.objects.exists()
