"""An endpoint's api_key_env names only allow-listed variables: never the database URL or the
secret key, which the worker would otherwise send to the endpoint's URL."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from curation.engine import load_backend
from curation.models import ModelEndpoint


@pytest.mark.parametrize("name", ["DATABASE_URL", "SECRET_KEY", "HOME"])
def test_an_endpoint_cannot_name_a_variable_off_the_allow_list(name, monkeypatch):
    monkeypatch.setenv("ENDPOINT_API_KEY_ENVS", "OPENAI_API_KEY,DATABASE_URL")
    with pytest.raises(ValueError, match="not on the allow-list"):
        load_backend({"backend": "openai", "base_url": "http://127.0.0.1:9/v1",
                      "model": "m", "api_key_env": name})  # fmt: skip
    endpoint = ModelEndpoint(name="e", backend="openai", model="m", api_key_env=name)
    with pytest.raises(ValidationError, match="not on the allow-list"):
        endpoint.clean()


def test_an_allow_listed_variable_is_read(monkeypatch):
    monkeypatch.setenv("ENDPOINT_API_KEY_ENVS", "MY_PROVIDER_KEY")
    monkeypatch.setenv("MY_PROVIDER_KEY", "sk-test")
    ModelEndpoint(name="e", backend="openai", model="m", api_key_env="MY_PROVIDER_KEY").clean()
