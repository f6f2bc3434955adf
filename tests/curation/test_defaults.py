"""What a newcomer gets without choosing anything: the batch form preselects the default
endpoints, and the default worked example is no problem of any benchmark or of the demo set."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from curation.engine.prompts import WORKED_EXAMPLE_PROBLEM
from curation.models import ModelEndpoint

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
