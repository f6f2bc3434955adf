"""Job rights, login throttling, the Content Security Policy, and htmx after a session
expired."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from curation.models import Job
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def leads_job(lead):
    return Job.objects.create(
        kind=Job.Kind.GENERATE, queue="gpu", created_by=lead, status=Job.Status.FAILED
    )


def test_a_reviewer_cannot_cancel_or_retry_someone_elses_job(client_for, reviewer, leads_job):
    client = client_for(reviewer)
    assert client.post(reverse("curation-job-retry", args=[leads_job.pk])).status_code == 403
    Job.objects.filter(pk=leads_job.pk).update(status=Job.Status.RUNNING)
    assert client.post(reverse("curation-job-cancel", args=[leads_job.pk])).status_code == 403
    assert Job.objects.get().status == Job.Status.RUNNING and Job.objects.count() == 1


def test_the_creator_and_leads_may_cancel_and_retry(client_for, reviewer, lead, admin_user):
    own = Job.objects.create(
        kind=Job.Kind.DIAGNOSE, queue="gpu", created_by=reviewer, status=Job.Status.RUNNING
    )
    client = client_for(reviewer)
    html = client.get(reverse("curation-job-detail", args=[own.pk])).content.decode()
    assert "Cancel</button>" in html
    client.post(reverse("curation-job-cancel", args=[own.pk]))
    assert Job.objects.get(pk=own.pk).status == Job.Status.CANCELLED
    client.force_login(lead)
    response = client.post(reverse("curation-job-retry", args=[own.pk]))
    assert response.status_code == 302 and Job.objects.count() == 2


def test_the_job_page_hides_the_buttons_a_reviewer_may_not_use(client_for, reviewer, leads_job):
    leads_job.kind = Job.Kind.DIAGNOSE  # visible to reviewers (shared generation work)
    leads_job.save()
    html = client_for(reviewer).get(reverse("curation-job-detail", args=[leads_job.pk]))
    assert "Retry</button>" not in html.content.decode()


def _login(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_repeated_failed_logins_are_throttled(client, settings, reviewer):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        assert _login(client, reviewer.username, "wrong").status_code == 200
    locked = _login(client, reviewer.username, "wrong")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    # Locked out even with the right password, until the cool-off passes.
    assert _login(client, reviewer.username, PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session


def _login_via(client, forwarded_for, password, remote="127.0.0.1"):
    return client.post(
        reverse("login"),
        {"username": "rita-reviewer", "password": password},
        REMOTE_ADDR=remote,
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )


def test_behind_the_proxy_one_client_cannot_lock_out_another(client, settings, reviewer):
    # deploy/nginx sets X-Forwarded-For to the client's address; gunicorn sees 127.0.0.1 for all.
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        _login_via(client, "203.0.113.9", "wrong")
    assert _login_via(client, "203.0.113.9", PASSWORD).status_code == 429
    assert _login_via(client, "198.51.100.7", PASSWORD).status_code == 302


def test_a_forwarded_address_from_a_client_that_is_not_the_proxy_is_ignored(
    client, settings, reviewer
):
    # Sent straight to the app, the header is the client's own invention: a new one per try
    # must not escape the throttle.
    settings.AXES_FAILURE_LIMIT = 3
    for n in range(3):
        _login_via(client, f"192.0.2.{n}", "wrong", remote="203.0.113.50")
    assert _login_via(client, "192.0.2.99", PASSWORD, remote="203.0.113.50").status_code == 429


def test_a_right_password_before_the_limit_resets_the_count(client, settings, reviewer):
    settings.AXES_FAILURE_LIMIT = 3
    _login(client, reviewer.username, "wrong")
    _login(client, reviewer.username, "wrong")
    assert _login(client, reviewer.username, PASSWORD).status_code == 302
    client.logout()
    _login(client, reviewer.username, "wrong")
    assert _login(client, reviewer.username, PASSWORD).status_code == 302


def test_every_page_sends_a_content_security_policy_without_inline_scripts(
    client_for, reviewer, make_trajectory
):
    t = make_trajectory()
    client = client_for(reviewer)
    for url in [t.get_absolute_url(), reverse("curation-review-queue"), reverse("login")]:
        response = client.get(url)
        policy = response["Content-Security-Policy"]
        script_src = re.search(r"script-src ([^;]*)", policy).group(1)
        assert script_src.strip() == "'self'"
        assert "unsafe-eval" not in policy
        html = response.content.decode()
        inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html)
        assert inline == [], url
        assert not re.search(r"\son[a-z]+=", html), url  # no inline event handlers either


def test_an_htmx_request_after_the_session_expired_gets_a_full_page_login(
    client, reviewer, make_trajectory
):
    t = make_trajectory()
    page = f"http://testserver{t.get_absolute_url()}?step=2"
    response = client.get(
        reverse("health-badge"), headers={"HX-Request": "true", "HX-Current-URL": page}
    )
    assert response.status_code == 200 and response.content == b""
    assert (
        response["HX-Redirect"] == "/login/?next=%2Ftrajectories%2F" + str(t.pk) + "%2F%3Fstep%3D2"
    )
    plain = client.get(reverse("health-badge"))  # without htmx: the ordinary redirect
    assert plain.status_code == 302 and plain["Location"].startswith("/login/")


def test_the_login_page_sends_the_person_back(client, reviewer, make_trajectory):
    t = make_trajectory()
    response = client.post(
        reverse("login") + f"?next={t.get_absolute_url()}",
        {"username": reviewer.username, "password": PASSWORD, "next": t.get_absolute_url()},
    )
    assert response["Location"] == t.get_absolute_url()


def test_live_job_text_is_appended_not_replaced(client_for, reviewer):
    job = Job.objects.create(
        kind=Job.Kind.DIAGNOSE, queue="gpu", created_by=reviewer, status=Job.Status.RUNNING,
        live={"items": [{"index": 0, "text": "Let x be the tables.", "chars": 20, "tokens": 5,
                         "code_calls": 0, "finished": False}]},
    )  # fmt: skip
    client = client_for(reviewer)
    url = reverse("curation-job-detail", args=[job.pk])
    page = client.get(url).content.decode()
    assert 'id="live-text-0">Let x be the tables.</pre>' in page
    assert 'name="have" value="20"' in page
    job.live["items"][0].update(text="Let x be the tables. Then y.", chars=28, tokens=8)
    job.save()
    poll = client.get(url, {"have": "20"}, headers={"HX-Request": "true"}).content.decode()
    assert '<span hx-swap-oob="beforeend:#live-text-0"> Then y.</span>' in poll
    assert "Let x be the tables" not in poll  # only the new text travels
    assert 'id="live-head-0" hx-swap-oob="true">8 tokens' in poll
    assert 'name="have" value="28"' in poll
    # A second item appears: it is added whole.
    job.live["items"].append({"index": 1, "text": "Second.", "chars": 7, "tokens": 2,
                              "code_calls": 0, "finished": False})  # fmt: skip
    job.save()
    poll = client.get(url, {"have": "28"}, headers={"HX-Request": "true"}).content.decode()
    assert (
        '<div hx-swap-oob="beforeend:#live">' in poll and 'id="live-text-1">Second.</pre>' in poll
    )
