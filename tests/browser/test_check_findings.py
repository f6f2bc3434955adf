"""Check findings on the review screen in real headless Chromium: a reviewer sees what the
checks over the execution record found beside its step, dismisses one (it is gone after a
reload) and accepts another as their label."""

from __future__ import annotations

import pytest

from curation.models import CheckFinding, FlawLabel
from tests.curation.test_intervener_checks import steps_with_a_missing_solver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def login(page, live_server, username="rita-reviewer"):
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")


def test_a_reviewer_dismisses_one_finding_and_accepts_another(
    live_server, page, screenshot, reviewer, make_trajectory, taxonomy
):
    t = make_trajectory(steps_with_a_missing_solver())
    login(page, live_server)
    page.goto(f"{live_server.url}/trajectories/{t.pk}/")
    finding = page.locator('#step-1 aside.check-finding[data-check="unavailable_solver"]')
    finding.wait_for()
    assert "gurobipy is not available in this sandbox" in finding.inner_text()
    screenshot("check-finding")

    finding.get_by_role("button", name="Dismiss").click()
    page.wait_for_url(f"**/trajectories/{t.pk}/?step=1#step-1")
    page.locator("#step-1").wait_for()
    assert page.locator("#step-1 aside.check-finding").count() == 0
    page.reload()
    page.locator("#step-2 aside.check-finding").first.wait_for()
    assert page.locator("#step-1 aside.check-finding").count() == 0

    accept = page.locator('#step-2 aside.check-finding[data-check="no_solver_call"]')
    accept.get_by_role("button", name="Accept as my label").click()
    page.wait_for_url(f"**/trajectories/{t.pk}/?step=2#step-2")
    page.locator("#labels-2 .badge.flaw").wait_for()
    assert "Manual computation" in page.locator("#labels-2").inner_text()
    assert page.locator('#step-2 aside[data-check="no_solver_call"]').count() == 0
    decided = dict(CheckFinding.objects.values_list("check_name", "status"))
    assert decided == {"unavailable_solver": "dismissed", "no_solver_call": "accepted"}
    assert FlawLabel.objects.get(trajectory=t).author_user == reviewer
