"""The browser import: store an upload, preview it, import it in a worker job."""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from pathlib import Path

from django.conf import settings

from ..formats.problem_files import ImportFileError, ParsedFile, parse_problem_file
from ..models import Job
from .jobs import job_claim, job_fail, job_finish, job_heartbeat
from .problems import problems_import, problems_import_check

logger = logging.getLogger(__name__)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class UploadNotFound(LookupError):
    pass


def _upload_dir() -> Path:
    path = Path(settings.UPLOAD_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _path_for(token: str) -> Path:
    if not _TOKEN.match(token):
        raise UploadNotFound("unknown upload")
    matches = list(_upload_dir().glob(f"{token}__*"))
    if not matches:
        raise UploadNotFound("the upload has expired or was already imported; upload it again")
    return matches[0]


def upload_filename(token: str) -> str:
    return _path_for(token).name.split("__", 1)[1]


def problem_upload_save(*, name: str, chunks) -> str:
    """Save an uploaded file under ``var/uploads`` and return its opaque token."""
    token = secrets.token_urlsafe(18)
    safe = _SAFE_NAME.sub("_", Path(name).name)[:100] or "upload.jsonl"
    with open(_upload_dir() / f"{token}__{safe}", "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    return token


def problem_upload_parse(*, token: str, benchmark: str | None = None) -> ParsedFile:
    """Parse and validate the stored upload; raises ImportFileError or UploadNotFound.

    Everything the worker needs is checked here, at the preview and again when the lead accepts
    (the file, and its benchmarks beside the stored ones), so an accepted upload imports.
    """
    path = _path_for(token)
    parsed = parse_problem_file(
        path.read_bytes(), filename=upload_filename(token), default_benchmark=benchmark or None
    )
    problems_import_check(records=parsed.records, filename=parsed.filename)
    return parsed


def problem_upload_discard(*, token: str) -> None:
    with contextlib.suppress(UploadNotFound):
        _path_for(token).unlink(missing_ok=True)


def problems_import_job_run(*, job_id: int, worker: str) -> Job | None:
    """Run an import job: claim it, parse, store with progress, finish (or fail with the reason).

    A malformed file is a result (the job fails with the file and line), not a retry. Whatever
    else stops the import (the database refusing a value) fails the job with the reason too,
    rather than leaving it "Running" until the reaper gives up; either way the upload is deleted
    (nothing of it was stored: the import is one transaction).
    """
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        return None
    token = job.params["token"]
    try:
        parsed = problem_upload_parse(token=token, benchmark=job.params.get("benchmark"))
        job_heartbeat(job_id=job.pk, done=0, total=len(parsed.records))
        summary = problems_import(
            records=parsed.records,
            progress=lambda done, total: job_heartbeat(job_id=job.pk, done=done, total=total),
            source=parsed.filename,
        )
    except (ImportFileError, UploadNotFound) as exc:
        job_fail(job_id=job.pk, error=str(exc))
    except Exception as exc:
        logger.exception("import job %s failed", job.pk)
        job_fail(job_id=job.pk, error=f"the import stopped: {type(exc).__name__}: {exc}")
    else:
        job_finish(job_id=job.pk, result={"filename": parsed.filename, **summary.to_dict()})
    finally:
        problem_upload_discard(token=token)
    job.refresh_from_db()
    return job
