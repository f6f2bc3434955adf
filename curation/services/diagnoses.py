"""Asking the Intervener for a trajectory's first flaw, and storing its verdict.

One call, whoever asks: a person's "diagnose" job and the CALM loop (``services.batches``) both
build an ``Intervener`` for an endpoint (its backend, prompts, the active taxonomy and what it
is told about the answer) and store each verdict with ``diagnosis_record``.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction

from calm_studio.queues import Queue

from .. import engine
from ..models import Diagnosis, FlawType, Job, ModelEndpoint, Trajectory
from .checks import trajectory_findings
from .endpoints import backend_for, endpoint_prompts, intervener_default
from .hints import intervener_hint_problem
from .jobs import job_claim, job_create, job_fail, job_finish, job_heartbeating
from .labels import flaw_label_set
from .trajectories import GenerationError

log = logging.getLogger(__name__)


def intervener_facts(trajectory: Trajectory, *, with_reference: bool | None = None):
    """What the system tells the Intervener about a trajectory: its stated answer, how it
    ended and, while curating (CALM_INTERVENER_SEES_REFERENCE), the reference answer."""
    if with_reference is None:
        with_reference = settings.CALM_INTERVENER_SEES_REFERENCE
    problem = trajectory.problem
    reference = None
    if with_reference:
        reference = (
            "no optimal solution (infeasible or unbounded)"
            if problem.answer is None or problem.answer_status != "value"
            else f"{problem.answer:g}"
        )
    return engine.Facts(
        answer=trajectory.final_answer or None,
        reference=reference,
        correct=trajectory.is_correct if with_reference else None,
        finish_reason=trajectory.finish_reason,
    )


class Intervener:
    """An Intervener endpoint ready to judge trajectories: its backend, its prompts, the
    active flaw taxonomy, and whether it is shown the reference answer (default: the
    CALM_INTERVENER_SEES_REFERENCE setting; a batch may set its own).

    ``mode`` (default: the CALM_INTERVENER_MODE setting; a batch may set its own): "both" runs
    the checks over the execution record first, tells the LLM their findings as facts, and a
    finding at an earlier step than the LLM's verdict wins; "checks" asks no LLM; "llm" runs
    no check. ``answer_rule`` ({rule, tolerance}, a batch's; else the settings') is what the checks
    compare answers with."""

    def __init__(
        self,
        endpoint: ModelEndpoint,
        *,
        with_reference: bool | None = None,
        mode: str | None = None,
        answer_rule: dict | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.answer_rule = answer_rule  # {"rule", "tolerance"} (a batch's), else the settings
        self.with_reference = (
            settings.CALM_INTERVENER_SEES_REFERENCE if with_reference is None else with_reference
        )
        self.mode = mode or settings.CALM_INTERVENER_MODE
        if self.mode not in engine.checks.MODES:
            raise GenerationError(
                f"unknown Intervener mode {self.mode!r}: one of {', '.join(engine.checks.MODES)}"
            )
        self.flaw_types = {
            ft.code: ft for ft in FlawType.objects.filter(active=True).select_related("category")
        }
        self.taxonomy = [ft.as_engine_dict() for ft in self.flaw_types.values()]
        self.prompts = endpoint_prompts(endpoint)
        self.check_specs = engine.checks.check_specs(self.prompts.checks)
        self.backend = backend_for(endpoint) if self.mode != "checks" else None

    def findings(self, trajectory: Trajectory) -> list[engine.checks.Finding]:
        """What the checks find in ``trajectory``'s record (none in mode "llm")."""
        if self.mode == "llm":
            return []
        return trajectory_findings(
            trajectory, specs=self.check_specs, flaw_codes=list(self.flaw_types),
            answer_rule=(self.answer_rule["rule"], self.answer_rule["tolerance"])
            if self.answer_rule else None,
        )  # fmt: skip

    def facts(self, trajectory: Trajectory) -> engine.Facts:
        """What this Intervener is told about ``trajectory`` (``intervener_facts``)."""
        return intervener_facts(trajectory, with_reference=self.with_reference)

    def ask(self, trajectory: Trajectory) -> engine.Verdict:
        """The Intervener's verdict on ``trajectory`` (nothing is stored; safe in threads):
        the checks first, then the LLM told their findings, then ``checks.combine``."""
        findings = self.findings(trajectory)
        if self.mode == "checks":
            return engine.checks.combine(None, findings, "checks")
        facts = self.facts(trajectory)
        facts.findings = findings
        verdict = engine.diagnose(
            self.backend,
            problem=trajectory.problem.question,
            steps=[engine.Step.from_dict(step) for step in trajectory.steps],
            taxonomy=self.taxonomy,
            facts=facts,
            system_prompt=self.prompts.intervener_system,
            hint_templates=self.prompts.hint_templates,
            # A hint that states the reference value, or runs too long, goes back for repair.
            hint_check=intervener_hint_problem(trajectory.problem, self.answer_rule),
        )
        return engine.checks.combine(verdict, findings, self.mode)

    def record(
        self, trajectory: Trajectory, verdict: engine.Verdict, *, job=None, reason: str = ""
    ) -> Diagnosis:
        """Store ``verdict`` (``diagnosis_record``); call inside a transaction."""
        return diagnosis_record(
            trajectory=trajectory, endpoint=self.endpoint, verdict=verdict,
            flaw_types=self.flaw_types, job=job, reason=reason,
        )  # fmt: skip


def diagnosis_request(
    *, trajectory: Trajectory, endpoint: ModelEndpoint | None = None, by=None, enqueue=True
) -> Job:
    """Queue an Intervener diagnosis of a trajectory."""
    intervener = endpoint or intervener_default()
    if intervener is None or not intervener.can_intervene:
        raise GenerationError("no Intervener endpoint is configured")
    return job_create(
        kind=Job.Kind.DIAGNOSE,
        queue=Queue.GPU,
        params={"trajectory_id": trajectory.pk, "endpoint_id": intervener.pk},
        by=by,
        enqueue=enqueue,
    )


def diagnose_job_run(*, job_id: int, worker: str) -> Job | None:
    """Worker side: ask the Intervener, store its verdict (or its error) and its label."""
    job = job_claim(job_id=job_id, worker=worker)
    if job is None:
        return None
    try:
        if not Diagnosis.objects.filter(job=job).exists():
            trajectory = Trajectory.objects.select_related("problem").get(
                pk=job.params["trajectory_id"]
            )
            intervener = Intervener(ModelEndpoint.objects.get(pk=job.params["endpoint_id"]))
            started = time.monotonic()
            with job_heartbeating(job.pk):
                verdict = intervener.ask(trajectory)
            log.info("diagnosis of %s took %.1f s", trajectory.pk, time.monotonic() - started)
            with transaction.atomic():
                intervener.record(trajectory, verdict, job=job)
        diagnosis = Diagnosis.objects.get(job=job)
        job_finish(job_id=job.pk, result={"diagnosis_id": diagnosis.pk})
    except Exception as exc:
        log.exception("diagnosis job %s failed", job_id)
        job_fail(job_id=job.pk, error=f"{type(exc).__name__}: {exc}")
    return Job.objects.get(pk=job.pk)


def diagnosis_record(
    *,
    trajectory: Trajectory,
    endpoint: ModelEndpoint,
    verdict,
    flaw_types: dict,
    job=None,
    reason: str = "",
) -> Diagnosis:
    """Store an Intervener verdict (valid or not: the raw text is always kept) and, when it
    names a flaw, the model's label on that step. Call inside a transaction."""
    flaw_type = flaw_types.get(verdict.flaw_type) if verdict.flaw_type else None
    diagnosis = Diagnosis.objects.create(
        trajectory=trajectory, endpoint=endpoint,
        status=Diagnosis.Status.ERROR if verdict.error else Diagnosis.Status.OK,
        flawless=None if verdict.error else verdict.flawless, step_index=verdict.step,
        flaw_type=flaw_type, hint=verdict.hint or "", rationale=verdict.rationale or "",
        raw=verdict.raw or "", error=verdict.error or "", job=job, quote=verdict.quote or "",
        source=getattr(verdict, "source", "llm"), check_name=getattr(verdict, "check", "") or "",
        findings=list(getattr(verdict, "findings", []) or []),
    )  # fmt: skip
    if diagnosis.status == Diagnosis.Status.OK and not verdict.flawless:
        flaw_label_set(
            trajectory=trajectory, step_index=verdict.step, flaw_type=flaw_type,
            by_endpoint=endpoint, note=verdict.rationale or "",
            reason=reason or f"Intervener diagnosis #{diagnosis.pk}",
        )  # fmt: skip
    return diagnosis
