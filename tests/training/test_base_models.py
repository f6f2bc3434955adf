"""The base model of a training run: an endpoint training cannot start from is that field's
error (marked on the form), and the embedded model's trainable weights are offered once made,
with how to make them while they are not."""

from __future__ import annotations

import json

import pytest

from curation.engine.serving import local_model
from curation.engine.serving.local_model import TRAINABLE_RECORD as RECORD
from curation.engine.serving.local_model import trainable_folder as default_folder
from curation.models import ModelEndpoint
from tests.training.test_views import sft_post
from training.models import TrainingRun
from training.services.runs import TRAINABLE_NAME

pytestmark = pytest.mark.django_db


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """The embedded model's cache in a temporary folder (never the real one), its GGUF there."""
    monkeypatch.setenv("CALM_MODEL_CACHE", str(tmp_path))
    monkeypatch.delenv("CALM_LOCAL_MODEL", raising=False)
    gguf = local_model.model_path(local_model.get_model())
    gguf.write_bytes(b"GGUF")
    return default_folder(gguf)


@pytest.fixture
def served(db):
    return ModelEndpoint.objects.create(
        name="llama.cpp", backend="openai", base_url="http://127.0.0.1:8080/v1", model="qwen"
    )


def test_a_served_endpoint_is_marked_on_the_model_field_with_how_to_make_trainable_weights(
    client_for, admin_user, served, tiny_dataset, embedded
):
    client = client_for(admin_user)
    form = client.get("/training/new/sft").content.decode()
    assert "trainable weights are made: run .venv/bin/python -m curation.engine.serving" in form
    assert "embedded-trainable" not in form  # not made yet: not offered
    page = client.post("/training/new/sft", sft_post(served, tiny_dataset, action="launch"))
    html = page.content.decode()
    model_errors = page.context["form"].errors["model"]
    assert "llama.cpp is a openai endpoint" in model_errors[0]
    assert "make its trainable weights: .venv/bin/python -m curation.engine" in model_errors[0]
    assert not page.context["form"].non_field_errors()
    # The htmx preview swaps in only its own section: it names the field there.
    preview = client.post("/training/new/sft", sft_post(served, tiny_dataset, action="preview"),
                          HTTP_HX_REQUEST="true").content.decode()  # fmt: skip
    assert "Model: training needs local weights" in preview and "marked above" not in preview
    assert "training needs local weights" in html and not TrainingRun.objects.exists()


def test_made_trainable_weights_are_offered_and_a_run_starts_from_them(
    client_for, admin_user, served, tiny_dataset, embedded
):
    embedded.mkdir()
    (embedded / RECORD).write_text(json.dumps({"dtype": "bfloat16"}))
    client = client_for(admin_user)
    form = client.get("/training/new/sft").content.decode()
    assert 'value="embedded-trainable"' in form and str(embedded) in form
    data = sft_post(served, tiny_dataset, action="preview")
    data["model"] = "embedded-trainable"
    page = client.post("/training/new/sft", data, HTTP_HX_REQUEST="true").content.decode()
    assert f"model_name_or_path: {embedded}" in page
    endpoint = ModelEndpoint.objects.get(name=TRAINABLE_NAME)
    assert (endpoint.backend, endpoint.model) == ("transformers", str(embedded))
    # Registered once: the form now lists it as an endpoint, not as a second choice.
    form = client.get("/training/new/sft").content.decode()
    assert "embedded-trainable" not in form and TRAINABLE_NAME in form
