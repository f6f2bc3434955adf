"""'Serve this checkpoint' on the run page: an admin's POST queues one job that converts the
checkpoint to GGUF, serves it with llama-server and registers it as a token-id endpoint, with
its progress and the lineage (run ⇄ endpoint) on the run page.

Where the llama.cpp build is here the job runs for real on the tiny model (the endpoint then
generates through the engine's backend); where it is not, the conversion and serving steps
are replaced by stand-ins, named as such, and the rest (job, endpoint, page) runs as it is.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from curation.engine.serving import gguf_serve, llama_server
from curation.models import Job, ModelEndpoint
from tests.polling import wait_for
from training.models import TrainingRun
from training.services import serving
from training.services.runs import RunError

pytestmark = pytest.mark.django_db
BUILT = llama_server.installed()


@pytest.fixture
def ended_run(run, tiny_model_path):
    """The tiny SFT run, ended: its final folder holds the tiny model's weights."""
    shutil.copytree(tiny_model_path, run.output_dir, dirs_exist_ok=True)
    Job.objects.filter(pk=run.job_id).update(status=Job.Status.SUCCEEDED)
    TrainingRun.objects.filter(pk=run.pk).update(
        outcome=TrainingRun.Outcome.COMPLETED, checkpoint=run.output_dir
    )
    run.refresh_from_db()
    return run


@pytest.fixture(autouse=True)
def _small_server(monkeypatch, settings):
    monkeypatch.setenv("CALM_LOCAL_MODEL_CTX", "1024")
    monkeypatch.setenv("CALM_LOCAL_MODEL_SLOTS", "2")
    # The job runs in the test's own transaction: the heartbeat thread would wait on its lock
    # (the job records its progress itself at every step).
    settings.JOB_HEARTBEAT_S = 3600


class StandInConvert:
    """Stand-in for the real conversion (no llama.cpp build here): writes a file named like
    the GGUF and returns a record shaped like ``gguf_convert.Conversion``'s."""

    def __call__(self, checkpoint, out_dir, base, echo):
        out_dir.mkdir(parents=True, exist_ok=True)
        echo("converting (stand-in)")
        gguf = out_dir / "model-Q4_K_M.gguf"
        gguf.write_bytes(b"GGUF stand-in")
        return {"checkpoint": str(checkpoint), "hf_dir": str(checkpoint), "gguf": str(gguf),
                "quant": "Q4_K_M", "outtype": "f16", "source": "stand-in", "merged": None,
                "sha256": {gguf.name: "0" * 64},
                "seconds": {"convert": 0.1, "total": 0.1}}  # fmt: skip


class StandInServe:
    """Stand-in for llama-server (no build here): a sleeping process in its own session plays
    the server's supervisor, so the endpoint's liveness and stopping are real."""

    def __call__(self, gguf, *, alias, folder, n_ctx, slots, on_state):
        # Named in its command line as the supervisor is, which is how a live one is told apart.
        argv = [sys.executable, "-c", "import time; time.sleep(120)",
                "curation.engine.serving.gguf_supervise (stand-in)"]  # fmt: skip
        proc = subprocess.Popen(argv, start_new_session=True)
        on_state("ready")
        return {"base_url": "http://127.0.0.1:9/v1", "port": 9, "alias": alias, "pid": proc.pid,
                "status_file": str(folder / "server-status.json"),
                "log_file": str(folder / "server.log"), "argv": []}  # fmt: skip


def _steps() -> dict:
    """The real steps where the build is here, the stand-ins elsewhere."""
    if BUILT is not None:
        return {}
    return {"convert": StandInConvert(), "serve": StandInServe()}


def _serve_from_the_page(client, run, on_commit) -> Job:
    with (
        mock.patch("curation.services.jobs.job_send", return_value="task-9") as send,
        on_commit(execute=True),
    ):
        response = client.post(f"/training/runs/{run.pk}/serve")
    assert response.status_code == 302 and response.url == run.get_absolute_url()
    job = Job.objects.get(kind=Job.Kind.SERVE_CHECKPOINT)
    assert job.params == {"run_id": run.pk, "checkpoint": run.output_dir}
    assert job.queue == "gpu" and job.task_id == "task-9"
    send.assert_called_once()
    return job


@pytest.mark.parametrize("persona", ["reviewer", "lead", "outsider"])
def test_only_admins_may_serve_a_checkpoint(request, client_for, ended_run, persona):
    client = client_for(request.getfixturevalue(persona))
    assert client.post(f"/training/runs/{ended_run.pk}/serve").status_code == 403
    assert not Job.objects.filter(kind=Job.Kind.SERVE_CHECKPOINT).exists()
    if persona == "lead":  # leads watch runs, but get no button
        assert 'id="serve-button"' not in client.get(ended_run.get_absolute_url()).content.decode()


def test_serving_is_offered_only_for_an_ended_training_run_with_weights(
    client_for, admin_user, run, ended_run
):
    html = client_for(admin_user).get(ended_run.get_absolute_url()).content.decode()
    assert 'id="serve-button"' in html and "Serve this checkpoint (GGUF, llama.cpp)" in html
    Job.objects.filter(pk=run.job_id).update(status=Job.Status.RUNNING)
    run.refresh_from_db()
    with pytest.raises(RunError, match="still active"):
        serving.checkpoint_serve(run=run, enqueue=False)
    TrainingRun.objects.filter(pk=run.pk).update(kind=TrainingRun.Kind.EVALUATE)
    run.refresh_from_db()
    with pytest.raises(RunError, match="only training runs"):
        serving.checkpoint_serve(run=run, enqueue=False)


@pytest.mark.timeout(600)
def test_serve_this_checkpoint_converts_serves_and_registers_a_token_id_endpoint(
    client_for, admin_user, lead, ended_run, django_capture_on_commit_callbacks
):
    client = client_for(admin_user)
    job = _serve_from_the_page(client, ended_run, django_capture_on_commit_callbacks)
    with pytest.raises(RunError, match="already being converted"):
        serving.checkpoint_serve(run=ended_run, enqueue=False)
    page = client.get(ended_run.get_absolute_url()).content.decode()
    assert 'id="run-serving"' in page and "hx-trigger" in page  # the page polls meanwhile

    done = serving.serve_job_execute(job_id=job.pk, worker="test", **_steps())
    assert done.status == Job.Status.SUCCEEDED, done.error
    assert done.progress_done == done.progress_total == serving.STEPS
    ended_run.refresh_from_db()
    endpoint = ended_run.served_endpoint
    assert endpoint is not None and endpoint.pk == done.result["endpoint_id"]
    assert endpoint.served_from == ended_run  # the endpoint leads back to its run
    assert endpoint.backend == ModelEndpoint.Backend.OPENAI
    assert endpoint.extra["completion_api"] == "llama.cpp"
    assert endpoint.extra["trained_by_run"] == ended_run.pk
    assert endpoint.tokenizer == ended_run.output_dir  # the converted weights' own tokenizer
    assert endpoint.base_url == done.result["base_url"] and endpoint.context_length == 1024
    pid = endpoint.extra["server_pid"]
    try:
        assert serving.served_alive(endpoint)
        page = client_for(lead).get(ended_run.get_absolute_url()).content.decode()
        assert 'id="run-served-endpoint"' in page and endpoint.name in page
        assert endpoint.base_url in page and 'id="serve-button"' not in page
        assert 'id="run-serving"' not in page  # done: the endpoint says it all
        with pytest.raises(RunError, match="already served"):
            serving.checkpoint_serve(run=ended_run, enqueue=False)
        if BUILT is not None:  # the real server: token ids in, token ids out
            from transformers import AutoTokenizer

            from curation.engine import GenerationRequest, load_backend

            assert Path(endpoint.extra["gguf"]).name == "model-Q4_K_M.gguf"
            tokenizer = AutoTokenizer.from_pretrained(endpoint.tokenizer)
            backend = load_backend(endpoint.spec())
            prompt = tokenizer.encode("m = pyo.ConcreteModel()\n")
            [result] = backend.generate([GenerationRequest(prompt, 5, temperature=0.0)])
            assert result.error is None and 1 <= len(result.token_ids) <= 5, result
    finally:
        assert gguf_serve.stop(pid)
    page = client_for(admin_user).get(ended_run.get_absolute_url()).content.decode()
    assert "its server is not running" in page
    assert "Serve this checkpoint again" in page  # a stopped server can be served again

    again = serving.serve_job_execute(
        job_id=serving.checkpoint_serve(run=ended_run, enqueue=False).pk, worker="test",
        **_steps(),
    )  # fmt: skip
    assert again.status == Job.Status.SUCCEEDED, again.error
    endpoint.refresh_from_db()  # the same endpoint, pointed at the new server
    assert again.result["endpoint_id"] == endpoint.pk and endpoint.extra["server_pid"] != pid
    assert ModelEndpoint.objects.filter(served_from=ended_run).count() == 1
    if BUILT is not None:
        assert again.result["reused"]  # the GGUF made the first time
    assert gguf_serve.stop(endpoint.extra["server_pid"])


def test_an_evaluation_of_the_served_endpoint_links_back_to_the_training_run(
    client_for, lead, ended_run, tiny_endpoint
):
    endpoint = ModelEndpoint.objects.create(name="served", backend="openai", model="run-1")
    TrainingRun.objects.filter(pk=ended_run.pk).update(served_endpoint=endpoint)
    evaluation = TrainingRun.objects.create(
        job=Job.objects.create(kind=Job.Kind.EVALUATE, queue="gpu"), kind="evaluate",
        name="after", model=endpoint, preset="eval_tiny", output_dir="/tmp/none",
    )  # fmt: skip
    page = client_for(lead).get(evaluation.get_absolute_url()).content.decode()
    assert 'id="run-model-from"' in page and ended_run.get_absolute_url() in page


def test_a_failed_conversion_is_shown_on_the_run_page_and_registers_nothing(
    client_for, admin_user, ended_run, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    """The real conversion subprocess, on a machine without the build (an empty cache): the
    job fails with the converter's own message, which says how to build."""
    monkeypatch.setenv("CALM_LLAMA_SERVER_CACHE", str(tmp_path / "no-build"))
    client = client_for(admin_user)
    job = _serve_from_the_page(client, ended_run, django_capture_on_commit_callbacks)
    done = serving.serve_job_execute(job_id=job.pk, worker="test")
    assert done.status == Job.Status.FAILED and "prepare_model" in done.error
    assert done.error.startswith("llama.cpp is not built here")  # the message, not a traceback
    ended_run.refresh_from_db()
    assert ended_run.served_endpoint is None
    page = client.get(ended_run.get_absolute_url()).content.decode()
    assert 'id="run-serve-error"' in page and "prepare_model" in page
    assert 'id="serve-button"' in page  # it can be tried again


def test_the_serve_job_page_leads_to_the_run_and_reviewers_do_not_see_it(
    client_for, ended_run, lead, reviewer
):
    job = serving.checkpoint_serve(run=ended_run, enqueue=False)
    assert client_for(lead).get(f"/jobs/{job.pk}/").url == ended_run.get_absolute_url()
    assert client_for(reviewer).get(f"/jobs/{job.pk}/").status_code == 404


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(600)
def test_a_real_worker_runs_the_serve_job_queued_from_the_page(
    live_worker, client_for, admin_user, ended_run
):
    """The button's job through Redis and a real Celery worker (no stand-ins: the worker runs
    the real steps). With the build here the checkpoint ends up served and registered; without
    it the job fails saying how to build, on the run page."""
    client = client_for(admin_user)
    assert client.post(f"/training/runs/{ended_run.pk}/serve").status_code == 302
    job = Job.objects.get(kind=Job.Kind.SERVE_CHECKPOINT)
    done = wait_for(
        lambda: Job.objects.exclude(status__in=Job.ACTIVE).filter(pk=job.pk).first(),
        what="the serve job to finish", timeout=420,
    )  # fmt: skip
    assert done.worker == live_worker.worker_hostname
    ended_run.refresh_from_db()
    if BUILT is None:
        assert done.status == Job.Status.FAILED and "prepare_model" in done.error
        return
    assert done.status == Job.Status.SUCCEEDED, done.error
    endpoint = ended_run.served_endpoint
    try:
        assert endpoint.extra["completion_api"] == "llama.cpp" and serving.served_alive(endpoint)
        page = client.get(ended_run.get_absolute_url()).content.decode()
        assert 'id="run-served-endpoint"' in page and endpoint.base_url in page
    finally:
        gguf_serve.stop(endpoint.extra["server_pid"])


@pytest.mark.timeout(600)
def test_storm_bench_serves_the_checkpoint_as_gguf_beside_the_bases_gguf(
    ended_run, admin_user, tiny_model_path
):
    """``storm_bench``'s serving step is the run page's: with the base served by llama.cpp,
    the checkpoint becomes a GGUF endpoint on llama-server (evaluated), its whole weights
    another endpoint (what GRPO trains from); without it, or with --serve transformers, the
    weights are both."""
    from training.services.storm import StormError, StormOptions, checkpoint_serve

    base_gguf = ModelEndpoint.objects.create(
        name="base as llama.cpp serves it", backend="openai", base_url="http://127.0.0.1:9/v1",
        model="base", extra={"completion_api": "llama.cpp"},
    )  # fmt: skip

    def options(**kw):
        return StormOptions(train_problems=[], test_problems=[], reasoner=base_gguf,
                            intervener=base_gguf, base_model=ended_run.model, **kw)  # fmt: skip

    served = checkpoint_serve(run=ended_run, options=options(base_served=base_gguf),
                              by=admin_user, steps=_steps())  # fmt: skip
    try:
        ended_run.refresh_from_db()
        assert served.served_as == "gguf"
        assert served.evaluated == ended_run.served_endpoint
        assert served.evaluated.extra["completion_api"] == "llama.cpp"
        assert served.evaluated.extra["trained_by_run"] == ended_run.pk
        assert served.weights.backend == "transformers" and served.weights != served.evaluated
        assert Job.objects.get(kind=Job.Kind.SERVE_CHECKPOINT).status == Job.Status.SUCCEEDED
    finally:
        gguf_serve.stop(served.evaluated.extra["server_pid"])

    plain = checkpoint_serve(run=ended_run, options=options(base_served=base_gguf,
                                                            serve="transformers"),
                             by=admin_user, steps=_steps())  # fmt: skip
    assert plain.served_as == "transformers" and plain.evaluated == plain.weights
    assert checkpoint_serve(run=ended_run, options=options(), by=admin_user).served_as == (
        "transformers"
    )
    with pytest.raises(StormError, match=r"needs the base model served by llama\.cpp"):
        checkpoint_serve(run=ended_run, options=options(serve="gguf"), by=admin_user)
