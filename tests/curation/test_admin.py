"""Django admin covers every model, and only admins get in."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

pytestmark = pytest.mark.django_db
MODELS = sorted(apps.get_app_config("curation").get_models(), key=lambda m: m.__name__)


def test_every_curation_model_is_registered():
    assert [m.__name__ for m in MODELS if not admin.site.is_registered(m)] == []


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_an_admin_opens_each_changelist(client_for, admin_user, model):
    url = reverse(f"admin:curation_{model._meta.model_name}_changelist")
    assert client_for(admin_user).get(url).status_code == 200


def post_change(client, user, obj, **changes):
    """POST the object's admin change form: its current values with ``changes`` over them."""
    from django.test import RequestFactory

    model_admin = admin.site._registry[type(obj)]
    request = RequestFactory().get("/")
    request.user = user
    form = model_admin.get_form(request, obj)(instance=obj)
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue
        data[name] = value
    data.update(changes)
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return client.post(url, data)


def test_the_admin_cannot_change_a_problems_answer_and_skip_its_versions(
    client_for, admin_user, problem
):
    from curation.models import AnswerVersion

    client = client_for(admin_user)
    response = post_change(client, admin_user, problem, answer="1", answer_status="value",
                           answer_version="7", question="Edited question.")  # fmt: skip
    assert response.status_code == 302  # the rest of the form saves
    problem.refresh_from_db()
    assert problem.question == "Edited question."
    assert (problem.answer, problem.answer_version) == (4100, 1)
    assert not AnswerVersion.objects.exists()
    url = reverse("admin:curation_answerversion_add")
    data = {"problem": problem.pk, "number": 5, "answer": 1, "answer_status": "value",
            "origin": "correction"}  # fmt: skip
    assert client.post(url, data).status_code == 403
    assert not AnswerVersion.objects.exists()


def test_the_admin_cannot_forge_or_alter_review_decisions(
    client_for, admin_user, reviewer, lead, make_trajectory
):
    from curation.models import BatchReviewPolicy, ReviewDecision

    t = make_trajectory()
    decision = ReviewDecision.objects.create(trajectory=t, decision="rejected", author=reviewer)
    client = client_for(admin_user)
    response = post_change(client, admin_user, decision, decision="approved", by_lead="on",
                           author=lead.pk)  # fmt: skip
    assert response.status_code == 403
    decision.refresh_from_db()
    assert (decision.decision, decision.author, decision.by_lead) == ("rejected", reviewer, False)
    data = {"trajectory": t.pk, "decision": "approved", "author": lead.pk, "by_lead": "on"}
    assert client.post(reverse("admin:curation_reviewdecision_add"), data).status_code == 403
    url = reverse("admin:curation_reviewdecision_delete", args=[decision.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert ReviewDecision.objects.count() == 1
    # Nor what makes a trajectory golden around the decisions: its correctness, the
    # Intervener's verdict, the hint's author, the approvals a batch needs.
    response = post_change(client, admin_user, t, is_correct="false")
    assert response.status_code == 403
    data = {"batch": 1, "required_approvals": 0}
    assert client.post(reverse("admin:curation_batchreviewpolicy_add"), data).status_code == 403
    assert not BatchReviewPolicy.objects.exists()


def test_the_admin_cannot_rewrite_who_wrote_a_hint_or_what_the_intervener_said(
    client_for, admin_user, reviewer, lead, make_trajectory
):
    from curation.models import Diagnosis, Hint

    t = make_trajectory()
    branch = make_trajectory(parent=t, branch_step=1)
    hint = Hint.objects.create(trajectory=t, step_index=1, text="Use code.", branch=branch,
                               author_user=reviewer)  # fmt: skip
    diagnosis = Diagnosis.objects.create(trajectory=t, status="ok", flawless=False)
    client = client_for(admin_user)
    post_change(client, admin_user, hint, author_user=lead.pk, branch="")
    hint.refresh_from_db()
    assert (hint.author_user, hint.branch) == (reviewer, branch)
    assert post_change(client, admin_user, diagnosis, flawless="true").status_code == 403
    diagnosis.refresh_from_db()
    assert diagnosis.flawless is False
