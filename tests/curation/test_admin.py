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
