"""Every page against every persona: who is let in, who is refused."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.models import Benchmark, Job, Problem

pytestmark = pytest.mark.django_db

ANON, OUTSIDER, REVIEWER, LEAD, ADMIN = "anon", "outsider", "reviewer", "lead", "admin"
EVERY_ROLE = (REVIEWER, LEAD, ADMIN)


@pytest.fixture
def cast(reviewer, lead, admin_user, outsider):
    return {ANON: None, OUTSIDER: outsider, REVIEWER: reviewer, LEAD: lead, ADMIN: admin_user}


@pytest.fixture
def problem():
    bench = Benchmark.objects.create(name="Bench")
    return Problem.objects.create(
        benchmark=bench, external_id="b-1", question="Maximize x.", answer=3, content_hash="h"
    )


@pytest.fixture
def job(lead):
    return Job.objects.create(kind=Job.Kind.IMPORT_PROBLEMS, queue="default", created_by=lead)


PAGES = [
    # (name, args factory, roles allowed)
    ("curation-problem-list", lambda p, j: [], EVERY_ROLE),
    ("curation-problem-detail", lambda p, j: [p.pk], EVERY_ROLE),
    ("curation-problem-import", lambda p, j: [], (LEAD, ADMIN)),
    ("curation-job-detail", lambda p, j: [j.pk], (LEAD, ADMIN)),  # the reviewer did not start it
    ("health-badge", lambda p, j: [], EVERY_ROLE),
    ("admin:index", lambda p, j: [], (ADMIN,)),
]


@pytest.mark.parametrize(("name", "args", "allowed"), PAGES, ids=[p[0] for p in PAGES])
@pytest.mark.parametrize("who", [ANON, OUTSIDER, REVIEWER, LEAD, ADMIN])
def test_each_role_against_each_page(client_for, cast, problem, job, name, args, allowed, who):
    url = reverse(name, args=args(problem, job))
    response = client_for(cast[who]).get(url)
    if who == ANON:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") if name != "admin:index" else "/")
    elif who in allowed:
        assert response.status_code == 200, response.content[:300]
    elif name == "admin:index":
        assert response.status_code == 302  # Django admin sends non-staff users to its login
    elif name == "curation-job-detail" and who == REVIEWER:
        assert response.status_code == 404  # someone else's job is not even acknowledged
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("who", [ANON, OUTSIDER, REVIEWER])
def test_it_refuses_an_import_post_below_lead(client_for, cast, who, tmp_path):
    response = client_for(cast[who]).post(
        reverse("curation-problem-import"), {"file": ("x.jsonl", b"{}")}
    )
    assert response.status_code in (302, 403)
    assert not Problem.objects.filter(external_id__startswith="x-").exists()


def test_a_fragment_requested_alone_is_checked_like_its_page(client_for, cast):
    response = client_for(cast[OUTSIDER]).get(
        reverse("curation-problem-list"),
        headers={"HX-Request": "true", "HX-Target": "problem-results"},
    )
    assert response.status_code == 403


def test_the_login_page_is_public(client):
    assert client.get(reverse("login")).status_code == 200


def test_the_create_user_command_gives_the_role(capsys):
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from curation.roles import Role, user_role

    call_command("create_user", "nina", "--role", "lead")
    out = capsys.readouterr().out
    assert "Created nina with role lead" in out
    assert "Password: " in out
    assert user_role(User.objects.get(username="nina")) is Role.LEAD
    call_command("create_user", "nina", "--role", "admin")
    nina = User.objects.get(username="nina")
    assert user_role(nina) is Role.ADMIN
    assert nina.is_staff
    assert list(nina.groups.values_list("name", flat=True)) == ["admin"]


def test_the_create_user_command_refuses_an_unknown_role():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="unknown role 'boss'"):
        call_command("create_user", "nina", "--role", "boss")
