"""Every view of the URLconf against every role: anonymous visitors go to the login page,
people below a view's role are refused, people at or above it are let in.

The table below is the specification; a view missing from it fails the test, so a new view
cannot be added without saying who may use it."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from curation.roles import Role

pytestmark = pytest.mark.django_db

# Anyone may reach these (a logout sends you to the login page; so does the admin's).
PUBLIC = {"login", "logout", "healthz", "admin:login", "admin:logout"}
# Refused by design even at the role: the world's job is the lead's, and only its creator or
# a lead may cancel or retry it; the admin's autocomplete needs parameters; django-axes'
# records are not added by hand.
REFUSED = {
    ("curation-job-cancel", "reviewer"), ("curation-job-retry", "reviewer"),
    ("admin:autocomplete", "admin"), ("admin:axes_accessattempt_add", "admin"),
    ("admin:axes_accesslog_add", "admin"), ("admin:axes_accessfailurelog_add", "admin"),
    # The records the review workflow and the answer history rest on are read-only in the
    # admin (curation/admin.py RecordAdmin; training runs and scores likewise).
    *((f"admin:curation_{model}_{action}", "admin")
      for model in ("trajectory", "hint", "flawlabel", "diagnosis", "checkfinding",
                    "reviewdecision", "locktakeover", "batchreviewpolicy", "answerversion",
                    "answerflag")
      for action in ("add", "delete")),
    ("admin:training_trainingrun_add", "admin"), ("admin:training_evaluationscore_add", "admin"),
}  # fmt: skip
R, L, A = Role.REVIEWER, Role.LEAD, Role.ADMIN
MINIMUM = {
    "health-badge": R,
    "curation-problem-list": R, "curation-problem-detail": R, "curation-problem-generate": L,
    "curation-problem-import": L, "curation-problem-import-preview": L,
    "curation-problem-flag": R, "curation-answer-flag-decide": L, "curation-problem-split": L,
    "curation-job-detail": R, "curation-job-cancel": R, "curation-job-retry": R,
    "curation-trajectory-detail": R, "curation-step-label": R, "curation-step-history": R,
    "curation-hint-create": R, "curation-trajectory-diagnose": R,
    "curation-suggestion-dismiss": R, "curation-trajectory-decide": R,
    "curation-check-finding-decide": R,
    "curation-trajectory-compare": R,
    "curation-batch-list": R, "curation-batch-new": L, "curation-batch-detail": R,
    "curation-batch-control": L,
    "curation-dataset-list": R, "curation-dataset-freeze": L, "curation-dataset-detail": R,
    "curation-dataset-download": R,
    "curation-agreement": R, "curation-agreement-cell": R,
    "curation-review-queue": R, "curation-review-next": R, "curation-review-assign": L,
    "curation-batch-review-policy": L, "curation-review-adjudication": L,
    "curation-lock-renew": R, "curation-lock-take-over": L, "curation-lock-release": R,
    "curation-comment-create": R, "curation-comment-resolve": R, "curation-review-export": L,
    "training-run-list": L, "training-run-new": A, "training-run-detail": L,
    "training-run-control": A, "training-evaluations": L, "training-evaluation-samples": L,
    "training-evaluation-rejudge": L, "training-evaluations-export": L,
}  # fmt: skip
CAST = {"anon": None, "outsider": None, "reviewer": R, "lead": L, "admin": A}


def _patterns(resolvers, prefix="", namespace=""):
    for entry in resolvers:
        if isinstance(entry, URLResolver):
            ns = f"{entry.namespace}:" if entry.namespace else namespace
            yield from _patterns(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), f"{namespace}{entry.name or ''}"


SAMPLES = {
    "kind": "sft", "action": "pause", "token": "nope", "name": "tokens.jsonl",
    "benchmark": "nl4opt", "app_label": "curation", "url": "nowhere/", "step": "0",
}  # fmt: skip


def _url(route: str, ids: dict) -> str:
    """A concrete URL for a route: real ids where the route names an object."""
    object_id = next((v for k, v in ids.items() if f"/{k}/" in f"/{route}"), 999_999)

    def sample(name: str) -> str:
        return SAMPLES.get(name, str(object_id))

    route = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: sample(m.group(1)), route)
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: sample(m.group(1)), route)
    return "/" + route.replace("^", "").replace("$", "")


@pytest.fixture
def world(make_trajectory, lead):
    from curation.models import Batch, Job, ModelEndpoint

    t = make_trajectory()
    model = ModelEndpoint.objects.create(name="m", backend="openai", model="m")
    batch = Batch.objects.create(name="b", created_by=lead, reasoner=model, intervener=model)
    job = Job.objects.create(kind=Job.Kind.GENERATE, queue="gpu", created_by=lead)
    return {"trajectories": t.pk, "jobs": job.pk, "batches": batch.pk, "problems": t.problem_id}


def _client(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _request(client: Client, url: str):
    response = client.get(url)
    if response.status_code == 405:  # a POST-only view
        response = client.post(url)
    return response


def test_every_view_checks_every_role(world, reviewer, lead, admin_user, outsider):
    users = {"anon": None, "outsider": outsider, "reviewer": reviewer, "lead": lead,
             "admin": admin_user}  # fmt: skip
    clients = {who: _client(user) for who, user in users.items()}
    problems = []
    seen = 0
    for route, name in _patterns(get_resolver().url_patterns):
        is_admin = route.startswith("admin/")
        if not is_admin and name not in PUBLIC and name not in MINIMUM:
            problems.append(f"{name or route}: not in the table of roles")
            continue
        minimum = A if is_admin else MINIMUM.get(name, R)
        url = _url(route, world)
        seen += 1
        for who, user in users.items():
            # A logout must not change who asks next: the public views get a fresh client.
            client = _client(user) if name in PUBLIC else clients[who]
            response = _request(client, url)
            status, location = response.status_code, response.get("Location", "")
            level = CAST[who]
            if name in PUBLIC:
                ok = status != 403
            elif (name, who) in REFUSED:
                ok = status == 403
            elif who == "anon":
                ok = status == 302 and "/login/" in location
            elif level is None or level < minimum:
                # Django's admin sends people without staff status to its own login page.
                ok = status == 403 or (is_admin and status == 302 and "/login/" in location)
            else:
                ok = status != 403 and not (status == 302 and "/login/" in location)
            if not ok:
                problems.append(f"{url} ({name}) as {who}: {status} {location}")
    assert seen > 150  # the whole URLconf, Django's admin included
    assert problems == [], "\n".join(problems)
