"""Creating, cancelling and relaunching training runs (web side), and registering a run's
checkpoint as a model endpoint (both sides)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import transaction

from calm_studio.queues import Queue
from curation.models import DatasetVersion, Job, ModelEndpoint
from curation.services.batches import batch_problems
from curation.services.endpoints import endpoint_prompt_record, endpoint_prompts_trained
from curation.services.jobs import job_cancel, job_create

from ..models import TrainingRun
from .configs import (
    APP_KEYS,
    RUN_DEFAULTS,
    ConfigError,
    config_merge,
    endpoint_model_args,
    preset_load,
)


class RunError(ValueError):
    pass


def problems_select(
    *,
    benchmarks: list[str],
    per_benchmark: int | None = None,
    seed: int = 0,
    splits: list[str] | None = None,
) -> dict:
    """A frozen problem set: per benchmark (slug) a seeded sample of ``per_benchmark``
    problems (all when None) of ``splits`` (None or empty: every split; the GRPO form
    defaults to train). The ids are stored, so a relaunch uses the same problems."""
    ids: list[int] = []
    for slug in benchmarks:
        chosen = batch_problems(
            benchmarks=[slug], sample_size=per_benchmark, seed=seed, splits=splits
        )
        ids.extend(p.pk for p in chosen)
    if not ids:
        raise RunError("the selected benchmarks have no problems in the chosen split")
    return {"benchmarks": benchmarks, "per_benchmark": per_benchmark, "seed": seed,
            "splits": list(splits or []), "problem_ids": ids}  # fmt: skip


def run_config(
    *,
    kind: str,
    model: ModelEndpoint,
    preset: str,
    fields: dict | None = None,
    overrides: dict | None = None,
    dataset: DatasetVersion | None = None,
    output_dir: str = "<run folder>",
) -> dict:
    """The launch configuration of a run (also the form's preview, before a folder exists)."""
    try:
        owned = endpoint_model_args(kind, model.spec())
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    owned["output_dir"] = output_dir
    if kind == TrainingRun.Kind.SFT:
        if dataset is None:
            raise RunError("choose a golden dataset version to train on")
        owned["train_file"] = str(Path(dataset.directory) / "tokens.jsonl")
    elif kind == TrainingRun.Kind.GRPO:
        owned["train_files"] = [f"{output_dir}/problems.jsonl"]
        owned["rollouts_file"] = f"{output_dir}/rollouts.jsonl"
        owned["prompts_file"] = f"{output_dir}/prompts.json"
    else:
        owned["problems"] = [f"{output_dir}/problems.jsonl"]
        owned["endpoint_spec"] = f"{output_dir}/endpoint.json"
        owned["prompts_file"] = f"{output_dir}/prompts.json"
    try:
        return config_merge(kind, preset, fields or {}, overrides or {}, owned)
    except ConfigError as exc:
        raise RunError(str(exc)) from None


def run_create(
    *,
    kind: str,
    name: str,
    model: ModelEndpoint,
    preset: str,
    fields: dict | None = None,
    overrides: dict | None = None,
    dataset: DatasetVersion | None = None,
    problem_selection: dict | None = None,
    accelerate_config: str = "",
    num_processes: int = 1,
    by=None,
    enqueue: bool = True,
) -> TrainingRun:
    """Create the run and its job, and queue it on the ``gpu`` queue once committed."""
    if kind != TrainingRun.Kind.SFT and not (problem_selection or {}).get("problem_ids"):
        raise RunError("choose the problems (benchmarks) to run on")
    run_config(  # validate before any row exists
        kind=kind, model=model, preset=preset, fields=fields, overrides=overrides,
        dataset=dataset,
    )  # fmt: skip
    with transaction.atomic():
        job = job_create(kind=kind, queue=Queue.GPU, params={}, by=by, enqueue=enqueue)
        run = TrainingRun.objects.create(
            job=job, kind=kind, name=name, model=model, dataset=dataset,
            problem_selection=problem_selection or {}, preset=preset,
            overrides=overrides or {}, accelerate_config=accelerate_config,
            num_processes=num_processes, created_by=by, output_dir="",
        )  # fmt: skip
        run.output_dir = str(Path(settings.TRAINING_RUNS_DIR) / f"{run.pk}-{kind}")
        run.config = run_config(
            kind=kind, model=model, preset=preset, fields=fields, overrides=overrides,
            dataset=dataset, output_dir=run.output_dir,
        )  # fmt: skip
        run.save(update_fields=["output_dir", "config"])
        job.params = {"run_id": run.pk}
        job.save(update_fields=["params"])
        if kind == TrainingRun.Kind.EVALUATE:
            from .overlap import evaluation_overlap_record

            evaluation_overlap_record(run)
    return run


def run_relaunch(*, run: TrainingRun, by=None) -> TrainingRun:
    """A new run with the same settings (a fresh folder; the old run and its files stay)."""
    if run.job.is_active:
        raise RunError("the run is still active")
    return run_create(
        kind=run.kind, name=run.name, model=run.model, preset=run.preset,
        overrides={**run.overrides, **_form_fields(run)}, dataset=run.dataset,
        problem_selection=run.problem_selection, accelerate_config=run.accelerate_config,
        num_processes=run.num_processes, by=by,
    )  # fmt: skip


def _form_fields(run: TrainingRun) -> dict:
    """What the form set on top of the preset: the launched config's values that differ from
    the preset's, minus the keys the run owns (they are set again)."""
    base = {**preset_load(run.kind, run.preset), **RUN_DEFAULTS[run.kind]}
    skip = set(APP_KEYS[run.kind]) | {"backend", "base_url", "tokenizer", "api_key_env"}
    return {k: v for k, v in run.config.items() if k not in skip and base.get(k) != v}


def run_cancel(*, run: TrainingRun) -> bool:
    """Ask the run to stop. The worker sees the job cancelled within a poll, sends SIGTERM,
    and the script stops at the end of the step with a checkpoint (evaluation: after the
    current batch, with partial results). A queued run never starts."""
    cancelled = job_cancel(job_id=run.job_id)
    if cancelled and run.job.task_id and run.job.status == Job.Status.QUEUED:
        from calm_studio.celery import app

        app.control.revoke(run.job.task_id)
    return cancelled


def checkpoint_register(*, run: TrainingRun, checkpoint: str | None = None) -> ModelEndpoint:
    """Register a run's weights as a Reasoner endpoint (transformers backend, the base model's
    sampling), so it can drive the next CALM batch or an evaluation. Idempotent per run."""
    if run.endpoint_id:
        return run.endpoint
    if not run.is_training:
        raise RunError("only training runs produce weights")
    path = checkpoint or (
        run.output_dir if run.outcome == run.Outcome.COMPLETED else run.checkpoint
    )
    if not path:
        raise RunError("the run left no checkpoint")
    base = run.model
    # Evaluate and train on the prompts the weights learnt: an SFT run's are its dataset's,
    # a GRPO run's the ones it rolled out with (its starting endpoint's).
    trained = run.dataset.prompts if run.dataset_id else endpoint_prompt_record(base)
    prompts, sampling = endpoint_prompts_trained(base, trained)
    stem = f"{run.name} (run #{run.pk}"
    name = f"{stem}, {Path(path).name})" if path != run.output_dir else f"{stem})"
    with transaction.atomic():
        endpoint = ModelEndpoint.objects.create(
            name=name[:100], role=ModelEndpoint.Role.REASONER,
            backend=ModelEndpoint.Backend.TRANSFORMERS, model=path,
            chat_template=base.chat_template, sampling=sampling,
            context_length=base.context_length, concurrency=base.concurrency,
            extra={k: v for k, v in base.extra.items() if k in ("dtype", "device")},
            prompts=prompts,
        )  # fmt: skip
        TrainingRun.objects.filter(pk=run.pk).update(endpoint=endpoint)
        run.endpoint = endpoint
    return endpoint


TRAINABLE_NAME = "embedded model (trainable weights)"


def trainable_endpoint_ensure(*, folder: Path) -> ModelEndpoint:
    """The endpoint of the embedded model's trainable weights (``serving.trainable``'s folder),
    registered the first time a run starts from them, so a run names its base model as
    every other run does."""
    with transaction.atomic():
        found = ModelEndpoint.objects.filter(
            backend=ModelEndpoint.Backend.TRANSFORMERS, model=str(folder)
        ).first()
        if found:
            return found
        name, n = TRAINABLE_NAME, 1
        while ModelEndpoint.objects.filter(name=name).exists():
            n += 1
            name = f"{TRAINABLE_NAME} {n}"
        return ModelEndpoint.objects.create(
            name=name, role=ModelEndpoint.Role.REASONER,
            backend=ModelEndpoint.Backend.TRANSFORMERS, model=str(folder),
        )  # fmt: skip
