"""The training pages: who may see and do what, the configuration preview, clear errors."""

from __future__ import annotations

import pytest

from curation.models import Job
from training.models import TrainingRun

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


def sft_post(endpoint, dataset, **extra):
    return {"name": "s", "model": endpoint.pk, "dataset": dataset.pk, "preset": "sft_tiny",
            "num_processes": 1, "overrides": "", **extra}  # fmt: skip


@pytest.mark.parametrize(
    ("persona", "see", "launch"),
    [("outsider", 403, 403), ("reviewer", 403, 403), ("lead", 200, 403), ("admin_user", 200, 200)],
)
def test_leads_watch_runs_and_only_admins_launch_or_stop_them(
    request, client_for, run, persona, see, launch
):
    client = client_for(request.getfixturevalue(persona))
    assert client.get("/training/").status_code == see
    assert client.get(run.get_absolute_url()).status_code == see
    assert client.get("/training/evaluations/").status_code == see
    assert client.get("/training/new/sft").status_code == launch
    status = client.post(f"/training/runs/{run.pk}/cancel").status_code
    assert status == (302 if launch == 200 else 403)
    run.job.refresh_from_db()
    assert run.job.status == (Job.Status.CANCELLED if launch == 200 else Job.Status.QUEUED)


def test_anonymous_visitors_are_sent_to_log_in(client, run):
    response = client.get(run.get_absolute_url())
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_the_preview_shows_the_launched_yaml_and_command_and_creates_nothing(
    client_for, admin_user, tiny_endpoint, tiny_dataset
):
    client = client_for(admin_user)
    data = sft_post(tiny_endpoint, tiny_dataset, action="preview", learning_rate="0.004",
                    overrides="warmup_ratio: 0.2")  # fmt: skip
    response = client.post("/training/new/sft", data, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="config-preview"' in html
    assert "<form" not in html  # only the partial
    assert "learning_rate: 0.004" in html and "warmup_ratio: 0.2" in html
    assert "training.scripts.sft --config" in html
    assert not TrainingRun.objects.exists()


def test_bad_overrides_are_shown_on_the_form_and_nothing_is_launched(
    client_for, admin_user, tiny_endpoint, tiny_dataset
):
    client = client_for(admin_user)
    data = sft_post(tiny_endpoint, tiny_dataset, action="launch", overrides="output_dir: /etc")
    response = client.post("/training/new/sft", data)
    assert response.status_code == 200
    assert "set by the run itself, not by overrides: output_dir" in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_launching_creates_the_run_and_opens_its_page(
    client_for, admin_user, tiny_endpoint, tiny_dataset, django_capture_on_commit_callbacks
):
    client = client_for(admin_user)
    data = sft_post(tiny_endpoint, tiny_dataset, action="launch", iw_sft="on")
    from unittest import mock

    with (
        mock.patch("curation.services.jobs.job_send", return_value="task-1") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post("/training/new/sft", data)
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response.url == run.get_absolute_url()
    assert run.config["iw_sft"] is True and run.created_by == admin_user
    send.assert_called_once()
    assert Job.objects.get(pk=run.job_id).task_id == "task-1"


def test_a_training_job_page_leads_to_its_run_and_reviewers_do_not_see_it(
    client_for, run, lead, reviewer
):
    assert client_for(lead).get(f"/jobs/{run.job_id}/").url == run.get_absolute_url()
    assert client_for(reviewer).get(f"/jobs/{run.job_id}/").status_code == 404


def test_an_unknown_kind_or_action_is_a_404(client_for, admin_user, run):
    client = client_for(admin_user)
    assert client.get("/training/new/dpo").status_code == 404
    assert client.post(f"/training/runs/{run.pk}/explode").status_code == 404


def test_model_output_in_the_log_is_escaped(client_for, lead, run):
    TrainingRun.objects.filter(pk=run.pk).update(log_tail="<script>alert(1)</script>")
    html = client_for(lead).get(run.get_absolute_url()).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_the_generic_job_endpoints_do_not_bypass_the_training_rules(client_for, run, lead):
    client = client_for(lead)
    assert client.post(f"/jobs/{run.job_id}/cancel").status_code == 403
    client.post(f"/jobs/{run.job_id}/retry")
    assert Job.objects.count() == 1  # no orphan job without a run
    run.job.refresh_from_db()
    assert run.job.status == Job.Status.QUEUED
