"""What a newcomer gets without choosing anything: the batch form preselects the default
endpoints and starts from the batch defaults (one home: ``Batch.DEFAULTS``), and the default
worked example is no problem of any benchmark or of the demo set."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from curation.engine.prompts import WORKED_EXAMPLE_PROBLEM
from curation.forms import BatchForm
from curation.models import Batch, ModelEndpoint
from curation.services.batches import batch_create
from curation.services.rejudge import batch_answer_rule

DEMO = Path(__file__).resolve().parents[2] / "curation" / "demo" / "demo_problems.jsonl"


@pytest.mark.django_db
def test_the_batch_form_preselects_the_default_reasoner_and_intervener(client_for, lead):
    ModelEndpoint.objects.create(name="other", backend="openai", model="m", base_url="http://x")
    default = ModelEndpoint.objects.create(
        name="embedded", backend="openai", model="m", base_url="http://y",
        is_default_reasoner=True, is_default_intervener=True,
    )  # fmt: skip
    html = client_for(lead).get(reverse("curation-batch-new")).content.decode()
    for field in ("reasoner", "intervener"):
        select = re.search(rf'<select name="{field}".*?</select>', html, re.S).group(0)
        assert f'<option value="{default.pk}" selected>' in select


@pytest.mark.django_db
def test_the_batch_form_starts_from_the_models_batch_defaults():
    form = BatchForm()
    initial = {name: form.get_initial_for_field(form.fields[name], name) for name in Batch.DEFAULTS}
    assert initial == dict(Batch.DEFAULTS)


def test_a_batch_whose_config_is_silent_reads_the_models_defaults(problem):
    both = ModelEndpoint.objects.create(name="e", backend="openai", model="m", role="both")
    created = batch_create(name="b", problems=[problem], reasoner=both, intervener=both,
                           enqueue=False)  # fmt: skip
    assert created.config == dict(Batch.DEFAULTS)
    assert created.items.count() == Batch.DEFAULTS["samples_per_problem"]
    silent = Batch(config={})
    assert silent.max_interventions == Batch.DEFAULTS["max_interventions"]
    assert silent.concurrency == Batch.DEFAULTS["concurrency"]
    assert batch_answer_rule({}) == (
        Batch.DEFAULTS["answer_rule"],
        Batch.DEFAULTS["answer_tolerance"],
    )


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_the_worked_example_is_no_benchmark_or_demo_problem():
    sources = [DEMO, *sorted(Path(settings.BENCHMARKS_DIR).glob("*.jsonl"))]
    assert len(sources) > 1, "the shared benchmarks are needed for this check"
    example = _words(WORKED_EXAMPLE_PROBLEM)
    closest = 0.0
    for path in sources:
        for line in path.read_text().splitlines():
            question = _words(json.loads(line).get("question") or "")
            if question:
                closest = max(closest, len(example & question) / len(example | question))
    assert closest < 0.5, f"the worked example is too close to a known problem ({closest:.2f})"
