"""STORM in miniature: the whole cycle (split, CALM batch, approvals, frozen golden set, SFT,
serving the checkpoint, evaluation before and after, GRPO) through the product's own services,
so that what ``manage.py storm_bench`` proves is what a user gets from the pages.

Every step calls the service a page calls: ``batch_create``/``batch_advance`` (the batch page),
``review_decide`` (the review page, as the named bench user), ``dataset_freeze`` (the dataset
page), ``run_create`` and the ``gpu`` worker's ``run_job_execute`` (the training pages: a real
subprocess, its metrics and checkpoint in the database), ``checkpoint_register`` (the run
page). Nothing is scored here: the figures are the evaluation runs' own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings

from curation.engine.serving import local_model
from curation.models import BatchItem, DatasetEntry, Job, ModelEndpoint, Problem
from curation.roles import Role
from curation.selectors.datasets import golden_trajectories
from curation.services.batches import batch_advance, batch_create
from curation.services.datasets import dataset_freeze
from curation.services.problems import problem_split_set
from curation.services.reviews import review_decide
from curation.services.users import user_create_or_update

from ..models import EvaluationScore, TrainingRun
from .launcher import run_job_execute
from .overlap import question_key
from .runs import checkpoint_register, run_create

BENCH_USER = "storm-bench"
# The paper's macro figures (CALM.md): context beside ours, never a target.
PAPER = {"base": 57.1, "sft": 58.7, "rl": 68.9}
STEPS = ("split", "curate", "approve", "freeze", "sft", "serve", "evaluate", "grpo")
# The scripted Intervener's verdict in --tiny (a SCRIPTED STAND-IN, orchestration only).
_FLAWLESS = {"flawless": True, "step": None, "flaw_type": None, "hint": None,
             "rationale": "scripted stand-in (storm_bench --tiny)"}  # fmt: skip


class StormError(RuntimeError):
    """The cycle cannot go on; the message says which step and why."""


@dataclass
class StormOptions:
    train_problems: list[Problem]
    test_problems: list[Problem]
    reasoner: ModelEndpoint
    intervener: ModelEndpoint
    base_model: ModelEndpoint
    max_interventions: int = 3
    sft_preset: str = "sft"
    eval_preset: str = "eval"
    grpo_preset: str = "grpo_cort"
    sft_overrides: dict = field(default_factory=dict)
    eval_overrides: dict = field(default_factory=dict)
    grpo_overrides: dict = field(default_factory=dict)
    grpo_steps: int = 2
    batch_config: dict = field(default_factory=dict)
    label: str = "storm bench"
    scripted_curation: bool = False  # --tiny: the batch's models are scripted stand-ins
    # The base model as llama.cpp serves it (the embedded endpoint: the GGUF its trainable
    # weights were made from). With it, and a llama-server build, the checkpoint is served as
    # GGUF too and both are evaluated on the same server at the same quantization ("auto").
    base_served: ModelEndpoint | None = None
    serve: str = "auto"  # "auto" | "gguf" | "transformers"


@dataclass
class StormLog:
    """The step log: a line per event, kept for the record and shown as it happens."""

    echo: Callable[[str], None] = lambda line: None
    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __call__(self, step: str, message: str) -> None:
        line = f"[{(time.monotonic() - self.started) / 60:6.1f} min] {step:<8} {message}"
        self.lines.append(line)
        self.echo(line)


# --- 1. the split ---------------------------------------------------------------------------


def train_pool(train: list[Problem], test: list[Problem]) -> list[Problem]:
    """The train problems whose question is no test question, in their order."""
    test_keys = {question_key(p.question) for p in test}
    return [p for p in train if question_key(p.question) not in test_keys]


def storm_split(*, train: list[Problem], test: list[Problem], by) -> dict:
    """Record the split: the test problems as ``test``, the train pool as ``train`` (a problem
    of the pool whose question is a test question is left out of it, and counted). Returns
    the pool, the test problems and the overlap left (0 unless this function is wrong)."""
    test_keys = {question_key(p.question) for p in test}
    pool = train_pool(train, test)
    dropped = len(train) - len(pool)
    for problem in test:
        if problem.split != "test":
            problem_split_set(problem=problem, split="test")
    for problem in pool:
        if problem.split != "train":
            problem_split_set(problem=problem, split="train")
    overlap = len({question_key(p.question) for p in pool} & test_keys)
    return {"pool": pool, "test": test, "dropped_from_train": dropped, "overlap": overlap}


# --- 2-4. curation: the batch, the approvals, the frozen golden set ---------------------------


def storm_curate(*, options: StormOptions, pool: list[Problem], by, log: StormLog):
    """A CALM batch on the train pool, driven here the way the worker drives it."""
    config = {"max_interventions": options.max_interventions, **options.batch_config}
    batch = batch_create(
        name=f"{options.label}: CALM on the train pool", problems=pool,
        reasoner=options.reasoner, intervener=options.intervener, config=config, by=by,
        selection={"storm_bench": True, "problem_ids": [p.pk for p in pool]}, enqueue=False,
    )  # fmt: skip
    while batch_advance(batch_id=batch.pk):
        done = BatchItem.objects.filter(batch=batch, finished_at__isnull=False).count()
        log("curate", f"batch #{batch.pk}: {done}/{len(pool)} problems finished")
    items = BatchItem.objects.filter(batch=batch)
    outcomes: dict[str, int] = {}
    for outcome in items.values_list("outcome", flat=True):
        outcomes[outcome or "unfinished"] = outcomes.get(outcome or "unfinished", 0) + 1
    log("curate", f"batch #{batch.pk} done: {json.dumps(outcomes)}")
    return batch, outcomes


def storm_approve(*, batch, by, log: StormLog) -> int:
    """Approve the batch's golden candidates as the bench user (a lead: one approval passes
    the gate), through the review service, so the decisions say who made them."""
    candidates = BatchItem.objects.filter(
        batch=batch, outcome=BatchItem.Outcome.CANDIDATE
    ).select_related("trajectory")
    approved = 0
    for item in candidates:
        review_decide(
            trajectory=item.trajectory, decision="approved", by=by,
            reason=f"storm_bench: golden candidate of batch #{batch.pk}, approved unread",
        )  # fmt: skip
        approved += 1
    log("approve", f"{approved} golden candidates approved as {by.username}")
    return approved


def storm_freeze(*, batch, options: StormOptions, by, log: StormLog):
    """Freeze the batch's golden trajectories (one tokenizer, its prompts recorded)."""
    made = BatchItem.objects.filter(batch=batch).values_list("trajectory_id", flat=True)
    golden = list(golden_trajectories().filter(pk__in=list(made), endpoint=options.reasoner))
    if not golden:
        raise StormError(
            "freeze: the batch gave no golden trajectory (correct, flawless and approved); "
            "try more train problems or interventions"
        )
    version = dataset_freeze(
        name=f"{options.label}: golden", trajectories=golden, by=by,
        note="Frozen by storm_bench from its CALM batch on the train pool.",
        filters={"batch": batch.pk, "storm_bench": True},
    )  # fmt: skip
    prompts = version.prompts.get("id")
    log("freeze", f"dataset #{version.pk}: {len(golden)} golden records, tokenizer "
                  f"{version.tokenizer_fingerprint[:12]}, prompts {prompts}")  # fmt: skip
    return version


# --- 5-8. training, serving, evaluation -------------------------------------------------------


def _execute(run: TrainingRun, step: str, log: StormLog) -> TrainingRun:
    """The ``gpu`` worker's own execution of a queued run (a real subprocess), waited on."""
    log(step, f"run #{run.pk} ({run.kind}, preset {run.preset}) started in {run.output_dir}")
    run_job_execute(job_id=run.job_id, worker=f"{BENCH_USER}@{step}")
    run.refresh_from_db()
    run.job.refresh_from_db()
    if run.job.status != "succeeded":
        raise StormError(f"{step}: run #{run.pk} ended {run.job.status}: {run.job.error}")
    log(step, f"run #{run.pk} done: {run.step} steps in {run.elapsed_s / 60:.1f} min")
    return run


def storm_sft(*, options: StormOptions, dataset, by, log: StormLog) -> TrainingRun:
    run = run_create(
        kind="sft", name=f"{options.label}: SFT", model=options.base_model,
        preset=options.sft_preset, overrides=options.sft_overrides, dataset=dataset, by=by,
        enqueue=False,
    )  # fmt: skip
    return _execute(run, "sft", log)


@dataclass
class Served:
    """What the serving step gives: ``weights`` (the run's whole weights, what GRPO trains
    from), ``evaluated`` (the endpoint the evaluation asks: the GGUF on llama-server, or the
    weights themselves) and ``served_as`` ("gguf", or the weights' backend)."""

    weights: ModelEndpoint
    evaluated: ModelEndpoint
    served_as: str


def checkpoint_serve(*, run: TrainingRun, options: StormOptions, by, steps: dict | None = None
                     ) -> Served:  # fmt: skip
    """Serve the run's weights: THE serving step.

    The weights are registered (``checkpoint_register``), a LoRA run's adapter first merged
    into whole weights (GRPO from an adapter folder fails: TRL reads its ``config.json``).
    With the base model served by llama.cpp (``options.base_served``) and a llama-server
    build, the checkpoint is then converted to GGUF and served exactly as "Serve this
    checkpoint" on the run page does it (``training.services.serving``: the same job, run
    here), so that base and trained model are evaluated on the same server at the same
    quantization. ``steps`` ({"convert", "serve"}) replaces the real conversion and server
    (tests on a machine without the build)."""
    weights = checkpoint_register(run=run)
    if (Path(weights.model) / "adapter_config.json").is_file():
        merged = _merge(weights.model)
        ModelEndpoint.objects.filter(pk=weights.pk).update(model=merged)
        weights.model = merged
    if not _serve_gguf(options, steps):
        return Served(weights, weights, weights.backend)
    from . import serving

    job = serving.checkpoint_serve(run=run, by=by, enqueue=False)
    job = serving.serve_job_execute(job_id=job.pk, worker="storm-bench", **(steps or {}))
    if job.status != Job.Status.SUCCEEDED:
        raise StormError(f"serve: converting and serving run #{run.pk} as GGUF failed: "
                         f"{job.error}")  # fmt: skip
    run.refresh_from_db()
    return Served(weights, run.served_endpoint, "gguf")


def _serve_gguf(options: StormOptions, steps: dict | None) -> bool:
    if options.serve == "transformers":
        return False
    built = steps is not None or local_model.server_build() is not None
    if options.serve == "gguf":
        if options.base_served is None:
            raise StormError("serve: --serve gguf needs the base model served by llama.cpp as "
                             "well (the embedded endpoint), to compare like with like")  # fmt: skip
        if not built:
            raise StormError("serve: --serve gguf needs llama-server: python manage.py "
                             "prepare_model builds it")  # fmt: skip
        return True
    return options.base_served is not None and built


def _merge(folder: str) -> str:
    """``training.scripts.merge_adapter`` in a subprocess (this process never loads torch)."""
    done = subprocess.run(
        [sys.executable, "-m", "training.scripts.merge_adapter", folder],
        cwd=settings.BASE_DIR, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise StormError(f"serve: merging the adapter in {folder} failed: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def _selection(problems: list[Problem], splits: list[str]) -> dict:
    benchmarks = sorted({p.benchmark.slug for p in problems})
    return {"benchmarks": benchmarks, "per_benchmark": None, "seed": 0, "splits": splits,
            "problem_ids": [p.pk for p in problems]}  # fmt: skip


def storm_evaluate(*, model, options: StormOptions, test, name: str, by, log: StormLog) -> dict:
    """An evaluation run of ``model`` on the test problems; its figures as the pages show
    them (pass@1 over every sample, the any-of-k figure, tokens and code blocks per
    response: means over samples, across benchmarks)."""
    run = run_create(
        kind="evaluate", name=f"{options.label}: {name}", model=model,
        preset=options.eval_preset, overrides=options.eval_overrides,
        problem_selection=_selection(test, ["test"]), by=by, enqueue=False,
    )  # fmt: skip
    run = _execute(run, "evaluate", log)
    scores = list(EvaluationScore.objects.filter(run=run, rejudged=False))
    samples = sum(s.samples for s in scores) or 1

    def mean(attribute: str) -> float | None:
        values = [(getattr(s, attribute), s.samples) for s in scores]
        if not values or any(v is None for v, _ in values):
            return None
        return round(sum(v * n for v, n in values) / samples, 4)

    pass_at_1 = (run.results or {}).get("macro_pass_at_1")
    figures = {
        "run": run.pk,
        "endpoint": model.pk,
        "pass_at_1": pass_at_1,
        "pass_at_1_ci95": wilson_interval(pass_at_1, sum(s.samples for s in scores)),
        "any_of_k": mean("any_of_k"),
        "response_tokens": mean("response_tokens_mean"),
        "code_blocks": mean("code_calls_mean"),
        "samples": sum(s.samples for s in scores),
        "overlap": (run.overlap or {}).get("overlap", 0),
        "rule": scores[0].rule_label if scores else "",
    }
    log("evaluate", f"{name}: pass@1 {figures['pass_at_1']}, any-of-k {figures['any_of_k']}, "
                    f"{figures['response_tokens']} tokens and {figures['code_blocks']} code "
                    f"blocks per response, overlap {figures['overlap']}")  # fmt: skip
    return figures


def wilson_interval(rate: float | None, n: int, z: float = 1.96) -> list[float] | None:
    """A 95% Wilson interval of a pass rate over ``n`` samples (samples of one problem are
    not independent: with k > 1 it is narrower than the truth). None without samples."""
    if rate is None or n <= 0:
        return None
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((rate * (1 - rate) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def storm_grpo(*, model, options: StormOptions, pool, by, log: StormLog) -> TrainingRun:
    run = run_create(
        kind="grpo", name=f"{options.label}: GRPO", model=model, preset=options.grpo_preset,
        overrides={"max_steps": options.grpo_steps, **options.grpo_overrides},
        problem_selection=_selection(pool, ["train"]), by=by, enqueue=False,
    )  # fmt: skip
    return _execute(run, "grpo", log)


# --- the whole cycle --------------------------------------------------------------------------


def bench_user():
    """The named user the bench's decisions are recorded as (a lead; it cannot log in)."""
    user, _, _ = user_create_or_update(username=BENCH_USER, role=Role.LEAD)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    return user


def storm_run(
    *, options: StormOptions, log: StormLog | None = None,
    advance: Callable[[str], None] = lambda step: None, serve_steps: dict | None = None,
) -> dict:  # fmt: skip
    """The cycle, step by step; ``advance(step)`` after each (a progress bar). Returns the
    figures (``summary``) with the ids of everything it made (``lineage``). ``serve_steps``:
    see ``checkpoint_serve``."""
    log = log or StormLog()
    started = time.monotonic()
    by = bench_user()
    split = storm_split(train=options.train_problems, test=options.test_problems, by=by)
    pool, test = split["pool"], split["test"]
    if not pool or not test:
        raise StormError(f"split: {len(pool)} train and {len(test)} test problems; need both")
    log("split", f"{len(pool)} train, {len(test)} test problems (split recorded; "
                 f"{split['dropped_from_train']} dropped from train as test questions), "
                 f"overlap {split['overlap']}")  # fmt: skip
    advance("split")

    batch, outcomes = storm_curate(options=options, pool=pool, by=by, log=log)
    advance("curate")
    approved = storm_approve(batch=batch, by=by, log=log)
    advance("approve")
    dataset = storm_freeze(batch=batch, options=options, by=by, log=log)
    advance("freeze")

    rss_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    sft_started = time.monotonic()
    sft = storm_sft(options=options, dataset=dataset, by=by, log=log)
    sft_wall = time.monotonic() - sft_started
    rss_after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    advance("sft")
    served = checkpoint_serve(run=sft, options=options, by=by, steps=serve_steps)
    served_as, trained = served.served_as, served.evaluated
    log("serve", f"run #{sft.pk}'s checkpoint is endpoint #{trained.pk} ({trained.name}), "
                 f"served as {served_as}")  # fmt: skip
    advance("serve")

    # Like with like: a GGUF checkpoint is compared with the base's GGUF on the same server.
    base_model = options.base_served if served_as == "gguf" else options.base_model
    base = storm_evaluate(model=base_model, options=options, test=test,
                          name="base model on the test problems", by=by, log=log)  # fmt: skip
    after = storm_evaluate(model=trained, options=options, test=test,
                           name="SFT checkpoint on the test problems", by=by, log=log)  # fmt: skip
    advance("evaluate")
    grpo = storm_grpo(model=served.weights, options=options, pool=pool, by=by, log=log)
    advance("grpo")

    golden = DatasetEntry.objects.filter(version=dataset).count()
    summary = {
        "train_problems": len(pool),
        "test_problems": len(test),
        "train_test_overlap": max(split["overlap"], base["overlap"], after["overlap"]),
        "dropped_from_train": split["dropped_from_train"],
        "batch_outcomes": outcomes,
        "approved": approved,
        "approved_by": by.username,
        "golden_records": golden,
        "base_pass_at_1": base["pass_at_1"],
        "trained_pass_at_1": after["pass_at_1"],
        "base": base,
        "trained": after,
        "served_as": served_as,
        "sft_steps": sft.step,
        "sft_minutes": round(sft.elapsed_s / 60, 2),
        # The subprocess from launch to exit: loading the model and saving it included.
        "sft_wall_minutes": round(sft_wall / 60, 2),
        # The largest child process so far (the SFT subprocess, unless an earlier one was).
        "sft_peak_rss_mib": round(max(rss_after, rss_before) / 1024),
        "grpo_steps": grpo.step,
        "grpo_minutes": round(grpo.elapsed_s / 60, 2),
        "grpo_minutes_per_step": round(grpo.elapsed_s / 60 / grpo.step, 2) if grpo.step else None,
        # From the log's start: the command's problem import and endpoints included.
        "minutes": round((time.monotonic() - min(started, log.started)) / 60, 2),
        "scripted_curation": options.scripted_curation,
        "reasoner": options.reasoner.name,
        "intervener": options.intervener.name,
        "base_model": options.base_model.model,
        # What the base figure was measured on: its GGUF beside a GGUF checkpoint.
        "base_evaluated": base_model.name,
        "paper": PAPER,
    }
    lineage = {"batch": batch.pk, "dataset": dataset.pk, "sft_run": sft.pk,
               "endpoint": trained.pk, "weights_endpoint": served.weights.pk,
               "base_evaluation": base["run"],
               "trained_evaluation": after["run"], "grpo_run": grpo.pk,
               "grpo_endpoint": grpo.endpoint_id}  # fmt: skip
    log("done", f"{summary['minutes']} min in all")
    return {"summary": summary, "lineage": lineage,
            "options": {k: v for k, v in asdict_light(options).items()}}  # fmt: skip


def asdict_light(options: StormOptions) -> dict:
    """The options as plain values (endpoints and problems by name and count)."""
    plain = {k: v for k, v in asdict(options).items()
             if k not in ("train_problems", "test_problems", "reasoner", "intervener",
                          "base_model", "base_served")}  # fmt: skip
    plain.update(reasoner=options.reasoner.name, intervener=options.intervener.name,
                 base_model=options.base_model.model,
                 base_served=options.base_served.name if options.base_served else None)  # fmt: skip
    return plain


# --- the tiny cycle's stand-ins (--tiny) ------------------------------------------------------


def tiny_endpoints(*, model_dir: str | Path, problems: list[Problem]):
    """For ``--tiny``: the tiny random model as the trainable base (real weights, trained,
    served and evaluated for real) and, for the CALM batch only, SCRIPTED STAND-INS of its
    Reasoner and Intervener with the same tokenizer (a random model writes no golden data):
    the Reasoner runs code that prints each problem's reference and boxes it, in the batch's
    item order; the Intervener calls every trajectory flawless."""
    model_dir = str(model_dir)
    base = ModelEndpoint.objects.create(
        name="tiny random Qwen3 (storm_bench --tiny)", role=ModelEndpoint.Role.REASONER,
        backend=ModelEndpoint.Backend.TRANSFORMERS, model=model_dir,
        extra={"device": "cpu", "dtype": "float32"},
    )  # fmt: skip
    completions = [
        f"```python\nprint({p.answer})\n```\nThe solver says {p.answer}.\n</think>\n"
        f"\\boxed{{{p.answer}}}"
        for p in problems
    ]
    reasoner = ModelEndpoint.objects.create(
        name="scripted stand-in Reasoner (storm_bench --tiny, orchestration only)",
        role=ModelEndpoint.Role.REASONER, backend=ModelEndpoint.Backend.SCRIPTED,
        model=model_dir, extra={"completions": completions},
    )  # fmt: skip
    intervener = ModelEndpoint.objects.create(
        name="scripted stand-in Intervener (storm_bench --tiny, orchestration only)",
        role=ModelEndpoint.Role.INTERVENER, backend=ModelEndpoint.Backend.SCRIPTED,
        model=model_dir, extra={"chat_rules": [["", json.dumps(_FLAWLESS)]]},
    )  # fmt: skip
    return base, reasoner, intervener


def tiny_options(*, pool_size: int) -> dict:
    """The presets and batch settings of the tiny cycle: the tests' CPU presets; the batch
    advances every item in one round (the scripted replay is in item order) and is judged by
    the scripted Intervener alone (the checks would find the scripted print); SFT sees whole
    records."""
    return {
        "sft_preset": "sft_tiny", "eval_preset": "eval_tiny", "grpo_preset": "grpo_tiny",
        # The tiny byte-level vocabulary spends ~1,500 tokens on the default prompts: the
        # preset's 512 would cut every record before its first trained token.
        "sft_overrides": {"max_length": 4096},
        "batch_config": {"concurrency": max(1, pool_size),
                         "intervener_mode": "llm"},
        "scripted_curation": True,
    }  # fmt: skip
