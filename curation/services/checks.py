"""Checks over a trajectory's execution record (``curation.engine.checks``), as the app uses
them: for the Intervener (``services.diagnoses``) and beside the steps for reviewers, who accept
a finding as their label or dismiss it (recorded; a decided finding is not offered again for
that step).

Findings are computed from the stored record whenever they are needed (they are a function of
it); only reviewers' decisions are stored (``CheckFinding``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction

from .. import engine
from ..models import CheckFinding, FlawType, ModelEndpoint, Trajectory
from .endpoints import intervener_default
from .labels import flaw_label_set


class CheckError(ValueError):
    """A decision that cannot be taken (no such finding, or already decided)."""


def check_record(
    trajectory: Trajectory, *, answer_rule: tuple[str, float] | None = None
) -> engine.checks.Record:
    """What the checks read of a stored trajectory; ``answer_rule`` (rule, tolerance) decides
    what "differs from the solver" means (default: the CALM_ANSWER_* settings)."""
    rule, tolerance = answer_rule or (settings.CALM_ANSWER_RULE, settings.CALM_ANSWER_TOLERANCE)
    return engine.checks.Record(
        problem=trajectory.problem.question,
        steps=[engine.Step.from_dict(step) for step in trajectory.steps],
        answer=engine.FinalAnswer.from_stored(
            trajectory.final_answer, trajectory.final_value, trajectory.answer_source
        ),
        finish_reason=trajectory.finish_reason,
        rule=rule,
        tolerance=tolerance,
    )


def check_specs_for(endpoint: ModelEndpoint | None) -> dict[str, engine.checks.CheckSpec]:
    """Which checks run and their hints: the defaults under the endpoint's ``checks`` prompt
    override (reviewers see those of the default Intervener)."""
    endpoint = endpoint if endpoint is not None else intervener_default()
    overrides = (endpoint.prompts or {}).get("checks") if endpoint is not None else None
    return engine.checks.check_specs(overrides)


def trajectory_findings(
    trajectory: Trajectory,
    *,
    specs: dict | None = None,
    answer_rule: tuple[str, float] | None = None,
    flaw_codes: list[str] | None = None,
) -> list[engine.checks.Finding]:
    """Every finding of the enabled checks whose flaw type is in the active taxonomy (none
    for a record whose steps are not the engine's shape: an imported one may be anything)."""
    if flaw_codes is None:
        flaw_codes = list(FlawType.objects.filter(active=True).values_list("code", flat=True))
    try:
        record = check_record(trajectory, answer_rule=answer_rule)
        return engine.checks.run_checks(
            record, specs=specs if specs is not None else check_specs_for(None),
            flaw_codes=flaw_codes,
        )  # fmt: skip
    except (TypeError, KeyError, ValueError, AttributeError):
        return []


def open_findings(trajectory: Trajectory) -> dict[int, list[engine.checks.Finding]]:
    """The findings a reviewer is offered, by step: those no reviewer has decided yet."""
    decided = set(trajectory.check_findings.values_list("step_index", "check_name"))
    out: dict[int, list[engine.checks.Finding]] = {}
    for finding in trajectory_findings(trajectory):
        if (finding.step, finding.check) not in decided:
            out.setdefault(finding.step, []).append(finding)
    return out


def check_finding_decide(
    *, trajectory: Trajectory, step_index: int, check: str, accept: bool, by
) -> CheckFinding:
    """Accept a finding (it becomes ``by``'s label on that step) or dismiss it; either way
    the decision is recorded and the finding is not offered again for that step."""
    found = next(
        (f for f in trajectory_findings(trajectory) if (f.step, f.check) == (step_index, check)),
        None,
    )
    if found is None:
        raise CheckError(f"no check {check!r} finding at step {step_index} of this trajectory")
    flaw_type = FlawType.objects.filter(code=found.flaw_type).first()
    try:
        with transaction.atomic():
            decision = CheckFinding.objects.create(
                trajectory=trajectory, step_index=step_index, check_name=check,
                flaw_type=flaw_type, evidence=found.evidence, hint=found.hint,
                status=CheckFinding.Status.ACCEPTED if accept else CheckFinding.Status.DISMISSED,
                decided_by=by,
            )  # fmt: skip
            if accept:
                decision.label = flaw_label_set(
                    trajectory=trajectory, step_index=step_index, flaw_type=flaw_type, by_user=by,
                    note=found.evidence, reason=f"accepted the check {check!r}",
                )  # fmt: skip
                decision.save(update_fields=["label"])
    except IntegrityError as exc:
        raise CheckError(f"the check {check!r} at step {step_index} was already decided") from exc
    return decision
