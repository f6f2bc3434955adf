"""Reviewing as a team, in real headless Chromium: two reviewers in two browser contexts and
a lead in a third; safe keys; maths; errors and an expired session; the CSP."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from curation.models import FlawLabel, LockTakeover, ReviewDecision, ReviewLock
from tests.conftest import ARTIFACTS, PASSWORD
from tests.curation.conftest import step

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def login(page, live_server, username):
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")


def opened_id(page) -> int:
    return int(page.url.split("/trajectories/")[1].split("/")[0])


@pytest.fixture
def watch_csp(browser):
    """New browser contexts whose CSP violations (console errors) are collected."""
    contexts, violations = [], []

    def new_page():
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on(
            "console",
            lambda msg: (
                violations.append(msg.text)
                if "Content Security Policy" in msg.text or "Refused to" in msg.text
                else None
            ),
        )
        return page

    yield new_page, violations
    for context in contexts:
        context.close()


def test_two_reviewers_get_different_items_locks_hold_and_a_lead_takes_over(
    live_server, watch_csp, reviewer, lead, make_trajectory, taxonomy
):
    from tests.conftest import _make_user

    new_page, violations = watch_csp
    _make_user("sam-reviewer", "reviewer")
    for _ in range(8):
        make_trajectory()
    rita, sam = new_page(), new_page()
    login(rita, live_server, "rita-reviewer")
    login(sam, live_server, "sam-reviewer")
    seen = {"rita": [], "sam": []}
    for page in (rita, sam):
        page.goto(live_server.url + "/review/")
    for _ in range(3):  # interleaved: rita, sam, rita, sam, ...
        for who, page in (("rita", rita), ("sam", sam)):
            with page.expect_navigation():
                page.keyboard.press("n")
            page.wait_for_selector("#lock-holder")
            seen[who].append(opened_id(page))
            assert "You hold the lock" in page.inner_text("#lock-holder")
    assert len(set(seen["rita"])) == 3 and len(set(seen["sam"])) == 3
    assert not set(seen["rita"]) & set(seen["sam"])

    # Sam opens rita's first item: he sees who holds it and cannot label or decide it.
    mine = seen["rita"][0]
    sam.goto(f"{live_server.url}/trajectories/{mine}/")
    assert "Locked by rita-reviewer until" in sam.inner_text("#lock-holder")
    sam.keyboard.press("j")
    sam.keyboard.press("1")
    error = sam.wait_for_selector("#label-error-0")
    assert "is being reviewed by rita-reviewer" in error.inner_text()
    with sam.expect_navigation():
        sam.click("#reject")
    assert "Nothing was decided" in sam.inner_text("#messages")
    assert not FlawLabel.objects.exists() and not ReviewDecision.objects.exists()

    # A lead takes it over; the takeover is recorded and shown.
    leo = new_page()
    login(leo, live_server, "leo-lead")
    leo.goto(f"{live_server.url}/trajectories/{mine}/")
    with leo.expect_navigation():
        leo.click("#take-over")
    assert "You took trajectory" in leo.inner_text("#messages")
    assert "taken over by leo-lead from rita-reviewer" in leo.inner_text("#lock-status")
    takeover = LockTakeover.objects.get()
    assert (takeover.taken_by, takeover.taken_from.username) == (lead, "rita-reviewer")
    assert ReviewLock.objects.get(trajectory_id=mine).reviewer == lead
    assert violations == []


def test_a_asks_for_confirmation_before_approving(
    live_server, watch_csp, reviewer, make_trajectory
):
    new_page, violations = watch_csp
    t = make_trajectory()
    page = new_page()
    login(page, live_server, "rita-reviewer")
    page.goto(f"{live_server.url}/trajectories/{t.pk}/")
    page.keyboard.press("a")
    expect(page.locator("#confirm-decision")).to_be_visible()
    expect(page.locator("#confirm-decision")).to_contain_text("approve as golden")
    page.keyboard.press("Escape")
    expect(page.locator("#confirm-decision")).to_be_hidden()
    # The dialog is closed: keys work again (n opens the next item: none is left, so the
    # queue), but nothing was decided.
    with page.expect_navigation(url=re.compile(r"/review/(\?.*)?$")):
        page.keyboard.press("n")
    expect(page.locator("#messages")).to_contain_text("Nothing else awaits you")
    assert not ReviewDecision.objects.exists()
    page.goto(f"{live_server.url}/trajectories/{t.pk}/")
    page.keyboard.press("a")
    expect(page.locator("#confirm-decision")).to_be_visible()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    decision = ReviewDecision.objects.get()
    assert (decision.decision, decision.author) == ("approved", reviewer)
    assert violations == []


def test_maths_render_typeset_and_script_in_maths_stays_inert(
    live_server, watch_csp, reviewer, make_trajectory
):
    new_page, violations = watch_csp
    steps = [
        step(0, "We need $x_1 + x_2 \\leq 10$ and maximise \\[ \\sum_i c_i x_i \\] over *x*."),
        step(1, "Hostile: $<script>window.pwned = 1</script>$ and "
                "\\( \\href{javascript:alert(1)}{x} \\)"),
    ]  # fmt: skip
    t = make_trajectory(steps=steps)
    page = new_page()
    login(page, live_server, "rita-reviewer")
    page.goto(f"{live_server.url}/trajectories/{t.pk}/")
    page.wait_for_selector("#step-0 .math-inline .katex")
    page.wait_for_selector("#step-0 .math-display .katex-display")
    typeset = " ".join(page.locator("#step-0 .md .katex-html").all_inner_texts())
    assert "\\" not in typeset and "leq" not in typeset and "≤" in typeset and "∑" in typeset
    assert page.locator("#step-0 .md em").count() == 1  # only *x*, nothing inside the maths
    assert page.evaluate("window.pwned") is None
    assert page.locator("#step-1 script, #step-1 a[href^=javascript]").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "review-team-maths.png", full_page=True)
    assert violations == []


def test_a_label_error_is_visible_and_an_expired_session_goes_to_the_full_login_page(
    live_server, watch_csp, reviewer, make_trajectory, taxonomy
):
    new_page, violations = watch_csp
    t = make_trajectory()
    page = new_page()
    login(page, live_server, "rita-reviewer")
    page.goto(f"{live_server.url}/trajectories/{t.pk}/")
    # A label on a step that no longer exists (the card outlived its trajectory's steps).
    page.evaluate(
        """() => { const f = document.querySelector('#step-0 form.label-form');
        f.setAttribute('hx-post', f.getAttribute('hx-post').replace('/steps/0/', '/steps/99/'));
        htmx.process(f); }"""
    )
    page.locator("#step-0 form.label-form button[type=submit]").click()
    page.wait_for_selector("#messages li.error")
    assert "step 99 does not exist" in page.inner_text("#messages")

    page.context.clear_cookies(name="sessionid")
    page.keyboard.press("j")
    with page.expect_navigation(url=lambda url: "/login/" in url):
        page.keyboard.press("1")  # an htmx request without a session
    assert page.locator("input[name=username]").count() == 1
    assert page.locator("article.step").count() == 0  # a whole login page, not a fragment
    page.fill("input[name=username]", "rita-reviewer")
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert f"/trajectories/{t.pk}/" in page.url  # and back
    assert violations == []


def test_the_page_renews_the_lock_while_the_reviewer_is_active(
    live_server, watch_csp, reviewer, make_trajectory
):
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    new_page, violations = watch_csp
    t = make_trajectory()
    page = new_page()
    login(page, live_server, "rita-reviewer")
    renewals = []
    page.on("request", lambda r: renewals.append(r.url) if "/lock/renew" in r.url else None)
    # The page's timers run on a clock the test moves: idle and active are compared over the
    # same ticks of the renewal timer, never over seconds of real waiting.
    page.clock.install()
    page.goto(f"{live_server.url}/trajectories/{t.pk}/?from=queue")
    # Opening the page (a GET) takes no lock, and an unheld lock is not renewed; "n" in the
    # queue (a POST) takes it.
    expect(page.locator("#lock-holder")).to_contain_text("Not locked")
    page.goto(f"{live_server.url}/review/")
    with page.expect_navigation(url=re.compile(rf"/trajectories/{t.pk}/\?from=queue$")):
        page.keyboard.press("n")
    page.clock.pause_at(page.evaluate("Date.now()") + 1)
    assert "You hold the lock" in page.inner_text("#lock-holder")
    every_ms = int(page.get_attribute("#lock-status", "data-renew-every")) * 1000
    soon = timezone.now() + timedelta(minutes=1)
    ReviewLock.objects.filter(trajectory=t).update(locked_until=soon)
    page.clock.run_for(2 * every_ms)  # two ticks, idle: nothing renews
    assert ReviewLock.objects.get(trajectory=t).locked_until == soon
    page.keyboard.press("j")  # active again
    with page.expect_response(lambda r: "/lock/renew" in r.url) as renewal:
        page.clock.run_for(every_ms)
    assert renewal.value.ok
    assert len(renewals) == 1  # the active tick's, none from the idle ones
    renewed = ReviewLock.objects.get(trajectory=t).locked_until
    assert renewed > timezone.now() + timedelta(minutes=settings.REVIEW_LOCK_MINUTES - 1)
    expect(page.locator("#lock-holder")).to_contain_text("You hold the lock")
    assert violations == []
