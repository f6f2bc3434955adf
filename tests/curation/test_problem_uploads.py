"""Uploads the worker would fail on are refused when they are accepted, naming the line and the
field; a worker that fails anyway marks its job failed with the reason and deletes the upload.
(Run on SQLite and PostgreSQL: PostgreSQL enforces lengths, integer ranges and refuses NUL.)"""

from __future__ import annotations

import html as htmllib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError
from django.urls import reverse

from curation.models import Benchmark, Job, Problem
from curation.services import problem_uploads
from curation.services.problem_uploads import problems_import_job_run, upload_filename

pytestmark = pytest.mark.django_db


def _jsonl(*records: dict) -> bytes:
    # ASCII: a lone surrogate travels as an escape, as in a file another tool wrote.
    return ("\n".join(json.dumps(r, ensure_ascii=True) for r in records) + "\n").encode()


GOOD = {"question": "Maximize x subject to x <= 3.", "answer": 3}


def _upload(client, data: bytes, name: str = "probs.jsonl", benchmark: str = "") -> str:
    response = client.post(
        reverse("curation-problem-import"),
        {"file": SimpleUploadedFile(name, data), "benchmark": benchmark},
    )
    assert response.status_code == 302
    return response["Location"]


def _token(preview_url: str) -> str:
    return preview_url.rstrip("/").split("?")[0].rstrip("/").split("/")[-1]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({**GOOD, "source_repo": "r" * 201}, "line 2: field 'source_repo' is longer than 200"),
        ({**GOOD, "source_path": "p" * 501}, "line 2: field 'source_path' is longer than 500"),
        ({**GOOD, "source_commit": "c" * 65}, "line 2: field 'source_commit' is longer than 64"),
        ({**GOOD, "source_id": "s" * 201}, "line 2: field 'source_id' is longer than 200"),
        ({**GOOD, "benchmark": "b" * 101}, "line 2: field 'benchmark' is longer than 100"),
        ({**GOOD, "source_index": 2**31}, "line 2: field 'source_index'"),
        ({**GOOD, "source_index": -(2**70)}, "line 2: field 'source_index'"),
        ({**GOOD, "question": "Maximize\x00 x."}, "line 2: field 'question' contains a NUL"),
        ({**GOOD, "notes": {"deep": ["ok", "a\x00b"]}}, "line 2: field 'notes' contains a NUL"),
        ({**GOOD, "bad\x00key": 1}, "line 2: a field name contains a NUL"),
        ({**GOOD, "weight": float("inf")}, "line 2: field 'weight' holds a number JSON cannot"),
        ({**GOOD, "question": "Maximize \ud800 x."}, "line 2: field 'question' contains a lone"),
        ({**GOOD, "notes": ["\udfff"]}, "line 2: field 'notes' contains a lone"),
    ],
)
def test_an_upload_the_worker_could_not_store_is_refused_naming_line_and_field(
    client_for, lead, record, message
):
    client = client_for(lead)
    preview_url = _upload(client, _jsonl(GOOD | {"id": "a"}, record | {"id": "b"}))
    token = _token(preview_url)
    preview = client.get(preview_url)
    assert preview.status_code == 400
    html = htmllib.unescape(preview.content.decode())
    assert f"probs.jsonl {message}" in html
    assert Problem.objects.count() == 0
    with pytest.raises(problem_uploads.UploadNotFound):  # the refused upload is deleted
        upload_filename(token)


def test_an_upload_whose_benchmark_slug_clashes_with_another_is_refused(client_for, lead):
    # "R&D" exists (slug "rd"); "RD" would be created with the same slug: IntegrityError.
    Benchmark.objects.create(name="R&D")
    client = client_for(lead)
    preview = client.get(_upload(client, _jsonl(GOOD | {"benchmark": "RD"})))
    assert preview.status_code == 400
    html = htmllib.unescape(preview.content.decode())
    assert "probs.jsonl line 1: field 'benchmark'" in html
    assert "'R&D'" in html  # names the benchmark it clashes with
    assert Benchmark.objects.count() == 1 and Problem.objects.count() == 0


def test_two_new_benchmarks_in_one_file_with_the_same_slug_are_refused(client_for, lead):
    client = client_for(lead)
    data = _jsonl(
        GOOD | {"benchmark": "Set A", "id": "1"}, GOOD | {"benchmark": "set-a", "id": "2"}
    )
    preview = client.get(_upload(client, data))
    assert preview.status_code == 400
    assert "probs.jsonl line 2: field 'benchmark'" in htmllib.unescape(preview.content.decode())


def test_the_existing_benchmark_itself_is_no_clash(client_for, lead):
    Benchmark.objects.create(name="R&D")
    client = client_for(lead)
    preview = client.get(_upload(client, _jsonl(GOOD), benchmark="R&D"))
    assert preview.status_code == 200


def _accepted_job(client) -> tuple[Job, str]:
    preview_url = _upload(client, _jsonl(GOOD | {"benchmark": "Late"}))
    token = _token(preview_url)
    assert client.post(preview_url, {"confirm": "1"}).status_code == 302
    return Job.objects.get(), token


def test_a_worker_that_finds_the_file_no_longer_storable_fails_the_job_and_deletes_it(
    client_for, lead
):
    client = client_for(lead)
    job, token = _accepted_job(client)
    # Between the preview and the worker, a benchmark with the same slug appeared.
    Benchmark.objects.create(name="LATE")
    done = problems_import_job_run(job_id=job.pk, worker="test")
    assert done.status == Job.Status.FAILED
    assert "line 1: field 'benchmark'" in done.error and "LATE" in done.error
    with pytest.raises(problem_uploads.UploadNotFound):
        upload_filename(token)
    assert Problem.objects.count() == 0


def test_a_worker_that_fails_on_the_database_fails_the_job_with_the_reason(
    client_for, lead, monkeypatch
):
    client = client_for(lead)
    job, token = _accepted_job(client)

    def refuse(**kwargs):
        raise DatabaseError("value too long for type character varying(100)")

    monkeypatch.setattr(problem_uploads, "problems_import", refuse)
    done = problems_import_job_run(job_id=job.pk, worker="test")
    assert done.status == Job.Status.FAILED  # not "Running" until the reaper gives up
    assert "value too long for type character varying(100)" in done.error
    with pytest.raises(problem_uploads.UploadNotFound):
        upload_filename(token)


def test_the_worker_stores_the_largest_values_the_checks_allow(client_for, lead):
    # The limits are the columns' own: what passes them is stored on either database.
    record = GOOD | {
        "benchmark": "b" * 100, "source_repo": "r" * 200, "source_path": "p" * 500,
        "source_commit": "c" * 64, "source_id": "s" * 200, "source_index": 2**31 - 1,
        "id": "i" * 200,
    }  # fmt: skip
    client = client_for(lead)
    preview_url = _upload(client, _jsonl(record))
    assert client.get(preview_url).status_code == 200
    client.post(preview_url, {"confirm": "1"})
    done = problems_import_job_run(job_id=Job.objects.get().pk, worker="test")
    assert done.status == Job.Status.SUCCEEDED, done.error
    assert Problem.objects.get().source_index == 2**31 - 1
