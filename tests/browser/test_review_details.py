"""Review details in real headless Chromium: the diagnosis job's "See the verdict" link lands
on the Intervener's verdict (a flawless one at the top of the trajectory, a flaw beside its
step), and the text of an inserted hint is highlighted inside its step."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from curation.models import Diagnosis, Job, ModelEndpoint

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def login(page, live_server, username="rita-reviewer"):
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")


def test_the_job_page_leads_to_a_flawless_verdict_and_a_flaw_shows_beside_its_step(
    live_server, page, screenshot, reviewer, make_trajectory, taxonomy
):
    t = make_trajectory()
    judge = ModelEndpoint.objects.create(name="judge-7b", backend="openai", model="m")
    flaw = next(ft for ft in taxonomy if ft.code == "manual_computation")
    earlier = Diagnosis.objects.create(
        trajectory=t, endpoint=judge, status="ok", flawless=False, step_index=1,
        flaw_type=flaw, source="checks", check_name="no_solver_call", rationale="By hand.",
    )  # fmt: skip
    flawless = Diagnosis.objects.create(
        trajectory=t, endpoint=judge, status="ok", flawless=True,
        rationale="Each step is *sound*.",
    )  # fmt: skip
    job = Job.objects.create(
        kind=Job.Kind.DIAGNOSE, status=Job.Status.SUCCEEDED, created_by=reviewer,
        params={"trajectory_id": t.pk, "endpoint_id": judge.pk},
        result={"diagnosis_id": flawless.pk},
    )  # fmt: skip
    login(page, live_server)
    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    page.get_by_role("link", name="See the verdict on the trajectory").click()
    page.wait_for_url(f"**/trajectories/{t.pk}/#verdict-{flawless.pk}")
    verdict = page.locator(f"#verdict-{flawless.pk}")
    expect(verdict).to_be_in_viewport()
    expect(verdict.locator(".verdict-outcome")).to_have_text("flawless")
    expect(verdict).to_contain_text("made by the LLM")
    expect(verdict).to_contain_text("judge-7b")
    expect(verdict.locator(".verdict-reason em")).to_have_text("sound")
    screenshot("verdict-flawless")

    beside = page.locator(f"#step-1 #verdict-{earlier.pk}")
    expect(beside).to_contain_text(f"first flaw: {flaw.name}")
    expect(beside).to_contain_text("the check no_solver_call")


def test_an_inserted_hint_is_highlighted_inside_its_step(
    live_server, page, screenshot, reviewer, make_trajectory
):
    from curation.models import Hint
    from tests.curation.conftest import STEPS, step

    hint_text = "Wait, the chairs need *whole* units; let me re-solve."
    parent = make_trajectory()
    hinted = step(1, f"Now in code. {hint_text} So in code:", "print(4100)", "4100\n",
                  has_hint=True)  # fmt: skip
    branch = make_trajectory(
        steps=[STEPS[0], hinted, STEPS[3]], parent=parent, branch_step=1, n_hint_tokens=12
    )
    Hint.objects.create(trajectory=parent, step_index=1, text=hint_text, branch=branch)
    login(page, live_server)
    page.goto(f"{live_server.url}/trajectories/{branch.pk}/")
    mark = page.locator("#step-1 .reasoning mark.hint-text")
    expect(mark).to_have_count(1)
    expect(mark).to_have_text("Wait, the chairs need whole units; let me re-solve.")
    expect(mark.locator("em")).to_have_text("whole")  # still rendered Markdown
    expect(mark).to_be_visible()
    assert mark.evaluate("m => getComputedStyle(m).backgroundColor") != "rgba(0, 0, 0, 0)"
    expect(page.locator("#step-0 mark")).to_have_count(0)
    screenshot("hint-highlight")
