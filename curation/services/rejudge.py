"""Judge stored trajectories again after their problem's reference answer changed.

A trajectory's ``is_correct`` is decided when it is generated, against the answer the problem
had then. When a correction is accepted or an import brings a new answer, the curation
trajectories of that problem are judged again against the current answer, with the rule they
were made under (their batch's, else the CALM_ANSWER_* settings), so the golden filter, which
reads ``is_correct``, always judges by the current answer. Evaluation samples are left alone:
an evaluation records which answer version it used, and keeps its figures (re-score one on the
Evaluations page instead).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

from .. import engine
from ..models import BatchItem, Problem, Trajectory


@dataclass
class Rejudged:
    trajectories: int = 0
    now_correct: int = 0
    now_incorrect: int = 0

    @property
    def changed(self) -> int:
        return self.now_correct + self.now_incorrect

    def __iadd__(self, other: Rejudged) -> Rejudged:
        self.trajectories += other.trajectories
        self.now_correct += other.now_correct
        self.now_incorrect += other.now_incorrect
        return self

    def sentence(self) -> str:
        if not self.trajectories:
            return "no trajectories to judge again"
        return (
            f"{self.trajectories} trajectories judged again: {self.now_correct} now correct, "
            f"{self.now_incorrect} now incorrect"
        )


def _rules_by_root(problem: Problem) -> dict[int, tuple[str, float]]:
    rules = {}
    for root_id, config in BatchItem.objects.filter(
        problem=problem, root__isnull=False
    ).values_list("root_id", "batch__config"):
        rules[root_id] = (
            config.get("answer_rule", "relative"),
            float(config.get("answer_tolerance", 1e-6)),
        )
    return rules


def trajectories_rejudge(*, problem: Problem) -> Rejudged:
    """Judge the problem's curation trajectories against its current answer; returns counts.
    Runs inside the caller's transaction (the one that changed the answer)."""
    trajectories = list(
        Trajectory.objects.filter(problem=problem)
        .exclude(source=Trajectory.Source.EVALUATED)
        .only("pk", "parent_id", "final_answer", "final_value", "answer_source", "is_correct")
    )
    by_id = {t.pk: t for t in trajectories}
    rules = _rules_by_root(problem)
    default = (settings.CALM_ANSWER_RULE, settings.CALM_ANSWER_TOLERANCE)
    counts = Rejudged(trajectories=len(trajectories))
    changed = []
    for t in trajectories:
        root = t
        while root.parent_id in by_id:
            root = by_id[root.parent_id]
        rule, tolerance = rules.get(root.pk, default)
        answer = engine.FinalAnswer.from_stored(t.final_answer, t.final_value, t.answer_source)
        correct = engine.judge(
            answer, problem.answer, answer_status=problem.answer_status, rule=rule,
            tolerance=tolerance,
        )  # fmt: skip
        if correct != t.is_correct:
            t.is_correct = correct
            changed.append(t)
            if correct:
                counts.now_correct += 1
            else:
                counts.now_incorrect += 1
    Trajectory.objects.bulk_update(changed, ["is_correct"], batch_size=500)
    return counts


def problems_rejudge(*, problems: Iterable[Problem]) -> Rejudged:
    total = Rejudged()
    for problem in problems:
        total += trajectories_rejudge(problem=problem)
    return total
