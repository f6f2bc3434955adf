"""The browser import: upload, preview with the detected mapping, confirm into a worker job."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from curation.models import Job, Problem
from curation.services.problem_uploads import problems_import_job_run

pytestmark = pytest.mark.django_db


def upload(client, name: str, data: bytes, benchmark: str = ""):
    return client.post(
        reverse("curation-problem-import"),
        {"file": SimpleUploadedFile(name, data), "benchmark": benchmark},
    )


ORLM = (
    "\n".join(
        json.dumps({"en_question": f"Problem {i}: maximize x.", "en_answer": str(i * 10)})
        for i in range(7)
    )
    + "\n"
).encode()


def test_it_previews_an_upload_with_its_mapping_and_plan(client_for, lead):
    client = client_for(lead)
    response = upload(client, "orlm.jsonl", ORLM, benchmark="ORLM sample")
    assert response.status_code == 302
    preview = client.get(response["Location"])
    html = preview.content.decode()
    assert preview.status_code == 200
    assert "question←en_question, answer←en_answer" in html
    assert "Problem 0: maximize x." in html
    assert "Problem 6" not in html  # only the first five records are shown
    assert preview.context["plan"].totals() == {"created": 7, "updated": 0, "unchanged": 0}
    assert Problem.objects.count() == 0  # a preview writes nothing


def test_a_benchmark_name_with_url_characters_reaches_the_preview_whole(client_for, lead):
    # "R&D #1 + more" was cut at "&" (and "+" read as a space): imported as "R".
    client = client_for(lead)
    response = upload(client, "orlm.jsonl", ORLM, benchmark="R&D #1 + more")
    preview = client.get(response["Location"])
    assert preview.context["benchmark"] == "R&D #1 + more"
    assert "R&amp;D #1 + more" in preview.content.decode()  # carried into the confirm form


def test_confirming_creates_a_job_that_imports_the_file(client_for, lead):
    client = client_for(lead)
    preview_url = upload(client, "orlm.jsonl", ORLM, benchmark="ORLM sample")["Location"]
    # The test transaction never commits, so nothing is enqueued here; the real round trip
    # through Redis and a worker is tests/curation/test_tasks.py.
    with_commit = client.post(preview_url, {"benchmark": "ORLM sample", "confirm": "1"})
    job = Job.objects.get()
    assert with_commit["Location"] == reverse("curation-job-detail", args=[job.pk])
    assert job.created_by == lead
    # The worker's side, run here directly (the real-worker round trip is in test_tasks.py).
    done = problems_import_job_run(job_id=job.pk, worker="test")
    assert done.status == Job.Status.SUCCEEDED
    assert done.result["totals"] == {"created": 7, "updated": 0, "unchanged": 0}
    assert Problem.objects.filter(benchmark__name="ORLM sample").count() == 7


def test_a_malformed_upload_imports_nothing_and_names_the_line(client_for, lead):
    client = client_for(lead)
    broken = ORLM + b'{"en_question": "no answer here"}\n'
    preview = client.get(upload(client, "broken.jsonl", broken)["Location"])
    assert preview.status_code == 400
    assert "broken.jsonl line 8: no answer field" in preview.content.decode()
    assert Problem.objects.count() == 0


def test_a_non_utf8_upload_is_refused_with_its_line(client_for, lead):
    client = client_for(lead)
    preview = client.get(upload(client, "latin1.jsonl", b'{"question": "caf\xe9", "answer": 1}')[
        "Location"
    ])  # fmt: skip
    assert preview.status_code == 400
    assert "latin1.jsonl line 1: not valid UTF-8" in preview.content.decode()


def test_the_job_page_polls_while_active_and_returns_a_fragment_to_htmx(client_for, lead):
    job = Job.objects.create(kind=Job.Kind.IMPORT_PROBLEMS, queue="default", created_by=lead)
    client = client_for(lead)
    full = client.get(reverse("curation-job-detail", args=[job.pk])).content.decode()
    fragment = client.get(
        reverse("curation-job-detail", args=[job.pk]), headers={"HX-Request": "true"}
    ).content.decode()
    assert "<html" in full and 'hx-trigger="every 1s"' in full
    assert "<html" not in fragment and fragment.strip().startswith('<div id="job-status"')
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    settled = client.get(
        reverse("curation-job-detail", args=[job.pk]), headers={"HX-Request": "true"}
    ).content.decode()
    assert "every 1s" not in settled  # a finished job stops polling


def test_an_unknown_upload_token_is_a_clear_404(client_for, lead):
    response = client_for(lead).get(reverse("curation-problem-import-preview", args=["A" * 24]))
    assert response.status_code == 404
    assert "upload it again" in response.content.decode()
