"""A generation's text shows on its job page while the model decodes, before any code call
and before the job ends. The Reasoner is the engine's scripted stand-in for a language model,
named as such, made slow: it hands out its tokens four at a time."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.urls import reverse

from curation.models import Job, ModelEndpoint
from curation.services.trajectories import generate_job_run, trajectories_generate
from tests.browser.test_review_flow import login
from tests.polling import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WORDS = "Let me think about the tables and the chairs one at a time. " * 12


def test_the_text_streams_onto_the_job_page_before_the_job_ends(
    live_server, page, lead, problem, tiny_model_path
):
    slow = ModelEndpoint.objects.create(
        name="scripted stand-in", backend="scripted", model=str(tiny_model_path),
        extra={"completions": [WORDS + "\\boxed{4100}"], "stream_tokens": 4,
               "stream_delay_s": 0.1},
    )  # fmt: skip
    job = trajectories_generate(problems=[problem], endpoint=slow, by=lead, enqueue=False)
    login(page, live_server, username="leo-lead")
    page.goto(live_server.url + reverse("curation-job-detail", args=[job.pk]))

    def run() -> None:
        try:
            generate_job_run(job_id=job.pk, worker="test")
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    try:
        page.wait_for_selector("#live-text-0:has-text('the tables and the chairs')")
        shown = page.inner_text("#live-text-0")
        assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING  # still decoding
        assert shown.strip() in "<think>\n" + WORDS and "boxed" not in shown  # partway
        assert page.inner_text("#job-state") == "Running"
    finally:
        worker.join(timeout=120)
    wait_for(lambda: Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED,
             what="the generation to finish")  # fmt: skip
    page.wait_for_selector("#job-state:text('Succeeded')")
    assert "\\boxed{4100}" in page.inner_text("#live-text-0")
