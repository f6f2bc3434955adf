"""Serving a run's checkpoint with llama.cpp ("serve this checkpoint" on the run page).

One job does it all: the checkpoint (a LoRA adapter is merged into the run's base first) is
converted to GGUF and quantized with the converter and quantizer of the pinned llama.cpp source
(``curation.engine.serving.gguf_convert``, in a subprocess: the worker never imports torch),
served by llama.cpp's own server on a free port under the embedded model's supervisor and
command line (``gguf_serve``, a detached process that outlives the job), and registered as a
Reasoner endpoint that sends token ids and gets token ids back (``completion_api:
"llama.cpp"``). The run links to the endpoint (``TrainingRun.served_endpoint``) and the endpoint
back to the run (``served_from``, and ``extra.trained_by_run``).

A served endpoint whose server has gone (the machine restarted) can be served again: the same
GGUF is reused and the endpoint gets the new address.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from calm_studio.queues import Queue
from curation.engine.serving import gguf_serve, local_model
from curation.models import Job, ModelEndpoint
from curation.services.endpoints import endpoint_prompt_record, endpoint_prompts_trained
from curation.services.jobs import job_claim, job_create, job_fail, job_finish, job_heartbeating

from ..models import TrainingRun
from .runs import RunError

log = logging.getLogger(__name__)
STEPS = 4  # convert, start the server, ready (smoke-tested), registered
QUANT = "Q4_K_M"

# (checkpoint, out_dir, base, echo) -> the conversion record (gguf_convert.Conversion's dict)
Convert = Callable[[Path, Path, str | None, Callable[[str], None]], dict]
# (gguf, alias, folder, n_ctx, slots, on_state) -> the started server (gguf_serve.Served's dict)
Serve = Callable[..., dict]


def checkpoint_path(run: TrainingRun) -> str:
    """The weights a run leaves: its final folder when it completed, else its newest checkpoint."""
    path = run.output_dir if run.outcome == run.Outcome.COMPLETED else run.checkpoint
    if not run.is_training:
        raise RunError("only training runs produce weights")
    if not path:
        raise RunError("the run left no checkpoint")
    return path


def serve_job_latest(run: TrainingRun) -> Job | None:
    return (
        Job.objects.filter(kind=Job.Kind.SERVE_CHECKPOINT, params__run_id=run.pk)
        .order_by("-pk")
        .first()
    )


def served_alive(endpoint: ModelEndpoint | None) -> bool:
    """Whether the server of a served checkpoint is still running (its supervisor's pid)."""
    pid = (endpoint.extra or {}).get("server_pid") if endpoint else None
    return bool(pid) and gguf_serve.running(int(pid))


def checkpoint_serve(*, run: TrainingRun, by=None, enqueue: bool = True) -> Job:
    """Queue the job that converts, serves and registers the run's checkpoint."""
    path = checkpoint_path(run)
    if run.job.is_active:
        raise RunError("the run is still active: serve its checkpoint when it has ended")
    latest = serve_job_latest(run)
    if latest is not None and latest.is_active:
        raise RunError("this checkpoint is already being converted and served")
    if run.served_endpoint_id and served_alive(run.served_endpoint):
        raise RunError(f"this checkpoint is already served as “{run.served_endpoint.name}”")
    return job_create(
        kind=Job.Kind.SERVE_CHECKPOINT, queue=Queue.GPU, by=by, enqueue=enqueue,
        params={"run_id": run.pk, "checkpoint": path},
    )  # fmt: skip


# --- the worker side ------------------------------------------------------------------------------


def convert_in_subprocess(
    checkpoint: Path, out_dir: Path, base: str | None, echo: Callable[[str], None]
) -> dict:
    """``python -m curation.engine.serving.gguf_convert``: its progress lines go to ``echo``,
    its record (JSON on stdout) comes back; a failure raises RunError with its message."""
    argv = [sys.executable, "-m", "curation.engine.serving.gguf_convert", str(checkpoint),
            str(out_dir), "--quant", QUANT]  # fmt: skip
    if base:
        argv += ["--base", base]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=settings.BASE_DIR
    )
    errors = []
    for line in proc.stderr:
        line = line.rstrip("\n")
        if line.startswith("gguf: "):
            echo(line[len("gguf: ") :])
        else:
            errors.append(line)
    out = proc.stdout.read()
    if proc.wait() != 0:
        # The converter's own message starts at its "error: " line (warnings come before it).
        starts = [i for i, line in enumerate(errors) if line.startswith("error: ")]
        message = "\n".join(errors[starts[-1] :] if starts else errors[-20:]).strip()
        raise RunError(message.removeprefix("error: ") or f"the conversion exited with "
                       f"{proc.returncode}")  # fmt: skip
    return json.loads(out)


def serve_and_wait(
    gguf: Path, *, alias: str, folder: Path, n_ctx: int, slots: int,
    on_state: Callable[[str], None],
) -> dict:  # fmt: skip
    """Start the detached server for ``gguf`` and wait until it is smoke-tested (or stop it)."""
    served = gguf_serve.start(
        gguf, alias=alias, status_file=folder / "server-status.json",
        log_file=folder / "server.log", n_ctx=n_ctx, slots=slots,
    )  # fmt: skip
    try:
        gguf_serve.wait_served(served, on_state=on_state)
    except gguf_serve.ServeError as exc:
        gguf_serve.stop(served.pid)
        raise RunError(str(exc)) from None
    return served.to_dict()


def serve_job_execute(
    *,
    job_id: int,
    worker: str,
    convert: Convert = convert_in_subprocess,
    serve: Serve = serve_and_wait,
) -> Job | None:
    """Claim the job and run it: convert, serve, register (``convert`` and ``serve`` are the
    real steps; tests on a machine without the llama.cpp build pass stand-ins)."""
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        return None
    run = TrainingRun.objects.select_related("model", "dataset", "served_endpoint").filter(
        pk=job.params.get("run_id")
    ).first()  # fmt: skip
    if run is None:
        job_fail(job_id=job.pk, error="This job's training run is gone.")
    else:
        try:
            result = _serve(run, job, convert, serve)
        except (RunError, OSError, ValueError) as exc:
            job_fail(job_id=job.pk, error=str(exc))
        except Exception as exc:
            log.exception("serving the checkpoint of run %s failed", run.pk)
            job_fail(job_id=job.pk, error=f"{type(exc).__name__}: {exc}")
        else:
            if result is not None:
                job_finish(job_id=job.pk, result=result)
    job.refresh_from_db()
    return job


def _say(job: Job, beat, done: int, step: str) -> None:
    beat.progress(done, STEPS)
    Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
        live={"step": step}, progress_done=done, progress_total=STEPS
    )


def _serve(run: TrainingRun, job: Job, convert: Convert, serve: Serve) -> dict | None:
    checkpoint = Path(job.params["checkpoint"])
    folder = Path(run.output_dir) / "gguf" / checkpoint.name
    alias = f"run-{run.pk}-{checkpoint.name}"
    n_ctx = min(local_model.n_ctx(), run.model.context_length)
    slots = local_model.n_slots()
    with job_heartbeating(job.pk) as beat:
        _say(job, beat, 0, f"converting {checkpoint.name} to GGUF ({QUANT})")
        base = run.model.model if Path(run.model.model).is_dir() else None
        conversion = convert(checkpoint, folder, base, lambda line: _say(job, beat, 0, line))
        if beat.cancelled:
            return None
        _say(job, beat, 1, "starting llama-server")
        served = serve(
            Path(conversion["gguf"]), alias=alias, folder=folder, n_ctx=n_ctx, slots=slots,
            on_state=lambda state: _say(job, beat, 2, f"llama-server: {state}"),
        )  # fmt: skip
        if beat.cancelled:
            gguf_serve.stop(served["pid"])
            return None
        _say(job, beat, 3, "registering the endpoint")
        endpoint = _register(run, conversion, served, n_ctx=n_ctx, slots=slots)
        _say(job, beat, 4, f"serving at {served['base_url']}")
    return {
        "endpoint_id": endpoint.pk, "base_url": served["base_url"], "gguf": conversion["gguf"],
        "sha256": conversion["sha256"], "seconds": conversion["seconds"],
        "quant": conversion["quant"], "source": conversion["source"],
        "merged": conversion["merged"], "reused": conversion.get("reused", False),
    }  # fmt: skip


def _register(
    run: TrainingRun, conversion: dict, served: dict, *, n_ctx: int, slots: int
) -> ModelEndpoint:
    """The endpoint of the served GGUF (created, or the previous one pointed at the new
    server): token ids in and out, the tokenizer of the converted weights, the prompts and
    sampling the checkpoint learnt (as ``checkpoint_register`` gives them)."""
    base = run.model
    trained = run.dataset.prompts if run.dataset_id else endpoint_prompt_record(base)
    prompts, sampling = endpoint_prompts_trained(base, trained)
    gguf_name = Path(conversion["gguf"]).name
    values = {
        "role": ModelEndpoint.Role.REASONER, "backend": ModelEndpoint.Backend.OPENAI,
        "base_url": served["base_url"], "model": served["alias"],
        "tokenizer": conversion["hf_dir"], "chat_template": base.chat_template,
        "sampling": sampling, "prompts": prompts, "context_length": n_ctx,
        "concurrency": slots,
        "extra": {
            "completion_api": "llama.cpp", "stop_strings": ["\n```\n"],
            "request_timeout_s": 900, "trained_by_run": run.pk,
            "checkpoint": conversion["checkpoint"], "gguf": conversion["gguf"],
            "gguf_sha256": conversion["sha256"].get(gguf_name, ""),
            "llama_cpp_source": conversion["source"], "server_pid": served["pid"],
            "server_status_file": served["status_file"],
        },
    }  # fmt: skip
    with transaction.atomic():
        endpoint = run.served_endpoint
        if endpoint is not None:
            ModelEndpoint.objects.filter(pk=endpoint.pk).update(**values)
            endpoint.refresh_from_db()
            return endpoint
        name = f"{run.name} (run #{run.pk}, GGUF {conversion['quant'] or conversion['outtype']})"
        taken = ModelEndpoint.objects.filter(name__startswith=name[:90]).count()
        endpoint = ModelEndpoint.objects.create(
            name=(f"{name[:90]} #{taken + 1}" if taken else name)[:100], **values
        )
        TrainingRun.objects.filter(pk=run.pk).update(served_endpoint=endpoint)
        run.served_endpoint = endpoint
    return endpoint
