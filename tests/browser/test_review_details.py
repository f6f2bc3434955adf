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
