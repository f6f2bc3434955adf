"""Reference answers over time: versions, and the flag a reviewer raises against one.

The problem row holds the current answer (every judge reads it there: the batch's golden
filter, new evaluations, generation); ``AnswerVersion`` rows keep each answer it ever had, so
an evaluation that recorded "version 1" stays explicable after a correction.
"""

from __future__ import annotations

import math

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from ..models import AnswerFlag, AnswerStatus, AnswerVersion, Problem
from .rejudge import Rejudged, trajectories_rejudge


class AnswerFlagError(ValueError):
    pass


def answer_version_add(
    *,
    problem: Problem,
    answer: float | None,
    answer_status: str,
    origin: str,
    by=None,
    note: str = "",
    flag: AnswerFlag | None = None,
) -> AnswerVersion:
    """Make (answer, answer_status) the problem's current answer as a new version. The caller
    holds the problem row locked (``select_for_update``) inside a transaction, so two
    corrections cannot take the same number (the unique constraint is the last guard)."""
    last = problem.answer_versions.aggregate(n=Max("number"))["n"] or 0
    if last < problem.answer_version:
        # A problem stored without a version row (created outside an import): keep its
        # current answer in the history before replacing it.
        AnswerVersion.objects.create(
            problem=problem, number=problem.answer_version, answer=problem.answer,
            answer_status=problem.answer_status, origin=AnswerVersion.Origin.IMPORT,
            note="the answer it had before the first recorded change",
        )  # fmt: skip
        last = problem.answer_version
    version = AnswerVersion.objects.create(
        problem=problem, number=last + 1, answer=answer, answer_status=answer_status,
        origin=origin, note=note, flag=flag, created_by=by,
    )  # fmt: skip
    problem.answer, problem.answer_status = answer, answer_status
    problem.answer_version = version.number
    problem.save(update_fields=["answer", "answer_status", "answer_version", "updated_at"])
    version.rejudged = trajectories_rejudge(problem=problem)  # the golden filter follows it
    return version


def _proposal(answer: float | None, status: str) -> tuple[float | None, str]:
    if status not in AnswerStatus.values:
        raise AnswerFlagError(f"unknown answer status {status!r}")
    if status == AnswerStatus.VALUE:
        if answer is None or not math.isfinite(answer):
            raise AnswerFlagError("propose the optimal value, or choose 'no optimal solution'")
        return float(answer), status
    return None, status


def answer_flag_raise(
    *,
    problem: Problem,
    by,
    reason: str,
    proposed_answer: float | None,
    proposed_status: str = AnswerStatus.VALUE,
) -> AnswerFlag:
    """A reviewer flags the problem's current reference answer as suspect."""
    reason = (reason or "").strip()
    if not reason:
        raise AnswerFlagError("say why the reference answer looks wrong")
    answer, status = _proposal(proposed_answer, proposed_status)
    if (answer, status) == (problem.answer, problem.answer_status):
        raise AnswerFlagError("the proposed answer is the current reference answer")
    return AnswerFlag.objects.create(
        problem=problem, against_version=problem.answer_version, reason=reason,
        proposed_answer=answer, proposed_status=status, raised_by=by,
    )  # fmt: skip


def answer_flag_decide(*, flag_id: int, by, accept: bool, note: str = "") -> AnswerFlag:
    """A lead accepts (a new answer version from the proposal) or rejects an open flag. An
    accepted one judges the problem's trajectories again (``flag.rejudged`` counts them)."""
    with transaction.atomic():
        # Lock the flag, then its problem: two leads deciding at once cannot both win, and a
        # correction cannot interleave with another version being added.
        flag = AnswerFlag.objects.select_for_update().filter(pk=flag_id).first()
        if flag is None:
            raise AnswerFlagError("no such flag")
        if flag.status != AnswerFlag.Status.OPEN:
            raise AnswerFlagError(f"this flag was {flag.status} already")
        problem = Problem.objects.select_for_update().get(pk=flag.problem_id)
        flag.status = AnswerFlag.Status.ACCEPTED if accept else AnswerFlag.Status.REJECTED
        flag.decided_by, flag.decided_at = by, timezone.now()
        flag.decision_note = (note or "").strip()
        flag.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
        flag.rejudged = Rejudged()
        if accept:
            version = answer_version_add(
                problem=problem, answer=flag.proposed_answer, answer_status=flag.proposed_status,
                origin=AnswerVersion.Origin.CORRECTION, by=by, note=flag.reason, flag=flag,
            )  # fmt: skip
            flag.rejudged = version.rejudged
    return flag
