"""The Django admin shows training runs and evaluation scores but cannot rewrite them: a run's
overrides, config and outcome come from the Training pages (and their allow-list), its scores
from the evaluation itself."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.curation.test_admin import post_change
from training.models import EvaluationScore

pytestmark = pytest.mark.django_db


def test_the_admin_renames_a_run_but_cannot_change_its_overrides_or_outcome(
    client_for, admin_user, run
):
    client = client_for(admin_user)
    response = post_change(client, admin_user, run, name="renamed", outcome="completed",
                           overrides='{"trust_remote_code": true}')  # fmt: skip
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.name == "renamed"
    assert (run.outcome, run.overrides) == ("", {})
    assert client.get(reverse("admin:training_trainingrun_add")).status_code == 403


def test_the_admin_cannot_forge_an_evaluation_score(client_for, admin_user, finished_eval):
    score = EvaluationScore.objects.filter(run=finished_eval).first()
    before = score.pass_at_1
    client = client_for(admin_user)
    assert post_change(client, admin_user, score, pass_at_1="1.0").status_code == 403
    score.refresh_from_db()
    assert score.pass_at_1 == before
    assert client.get(reverse("admin:training_evaluationscore_add")).status_code == 403
