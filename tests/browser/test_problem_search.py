"""In real headless Chromium: log in and search the problem list."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_logs_in_and_searches_the_problem_list(live_server, page, screenshot, reviewer):
    call_command("demo_setup", verbosity=0)

    page.goto(live_server.url + "/")
    assert "/login/" in page.url  # every page needs a login
    page.fill("input[name=username]", "rita-reviewer")
    page.fill("input[name=password]", "correct horse battery staple")
    with page.expect_navigation():
        page.click("button[type=submit]")
    expect(page.locator("#result-count")).to_have_text("12")
    screenshot("problem-list")

    # Typing searches as you type (htmx), and the URL keeps the query for links and back.
    page.fill("#search-q", "grain")
    # A web-first assertion, not wait_for_function: the page's CSP forbids eval, which
    # Playwright's string predicates need.
    expect(page.locator("#result-count")).to_have_text("1")
    assert "demo-10-trucks" in page.inner_text("#problem-results")
    assert "q=grain" in page.url
    screenshot("search")

    with page.expect_navigation():
        page.click("text=demo-10-trucks")
    expect(page.locator("strong.answer")).to_have_text("770")
    screenshot("problem-detail")

    page.go_back()  # waits for that navigation to load
    expect(page.locator("#search-q")).to_have_value("grain")


def test_a_wrong_password_is_refused(live_server, page, reviewer):
    page.goto(live_server.url + "/login/")
    page.fill("input[name=username]", "rita-reviewer")
    page.fill("input[name=password]", "wrong")
    with page.expect_navigation():
        page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("Your username and password didn't match")
