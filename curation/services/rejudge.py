"""Judge stored trajectories again after their problem's reference answer changed.

A trajectory's ``is_correct`` is decided when it is saved, against the answer the problem has
then. When a correction is accepted or an import brings a new answer, the curation trajectories
of that problem are judged again against the current answer, with the rule they were made under
(their batch's, else the CALM_ANSWER_* settings), so the golden filter, which reads
``is_correct``, always judges by the current answer. A trajectory saved while the answer changes
is judged against the answer read under the same row lock (``problem_answer_current``).

Left alone: evaluation samples (an evaluation records which answer version it used and keeps its
figures; re-score one on the Evaluations page instead), and a batch's round log
(``BatchRound.correct_before``/``correct_after``), which stays as the run saw it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from .. import engine
from ..models import Batch, BatchItem, Problem, Trajectory
from ..selectors.batches import trajectories_made_by_batches


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
        noun = "trajectory" if self.trajectories == 1 else "trajectories"
        return (
            f"{self.trajectories} {noun} judged again: {self.now_correct} now correct, "
            f"{self.now_incorrect} now incorrect"
        )


def problem_answer_current(problem: Problem) -> Problem:
    """Refresh ``problem``'s reference answer from the database, locking its row when called
    inside a transaction: a trajectory saved in that transaction is judged against the answer
    a correction (which takes the same lock, then re-judges) has or has not yet committed, never
    against one read minutes earlier when its rollout started."""
    rows = Problem.objects.filter(pk=problem.pk)
    if transaction.get_connection().in_atomic_block:
        rows = rows.select_for_update()
    fresh = rows.values("answer", "answer_status", "answer_version").first()
    if fresh:
        problem.answer, problem.answer_status = fresh["answer"], fresh["answer_status"]
        problem.answer_version = fresh["answer_version"]
    return problem


def batch_answer_rule(config: dict) -> tuple[str, float]:
    """A batch's answer rule and tolerance, from its config (the one place that reads them)."""
    config = {**Batch.DEFAULTS, **config}
    return config["answer_rule"], float(config["answer_tolerance"])


def trajectories_rejudge(*, problem: Problem) -> Rejudged:
    """Judge the problem's curation trajectories against its current answer; returns counts.
    Runs inside the caller's transaction (the one that changed the answer), and moves a finished
    batch item between "golden candidate" and "judged flawless but wrong" with its trajectory."""
    trajectories = list(
        Trajectory.objects.filter(problem=problem)
        .exclude(source=Trajectory.Source.EVALUATED)
        .only("pk", "final_answer", "final_value", "answer_source", "is_correct")
    )
    # A batch's trajectories were judged with its rule; a person's branch from one, with the
    # settings' rule.
    made = trajectories_made_by_batches(problem=problem)
    rules = {pk: batch_answer_rule(config) for pk, config in made.items()}
    default = (settings.CALM_ANSWER_RULE, settings.CALM_ANSWER_TOLERANCE)
    counts = Rejudged(trajectories=len(trajectories))
    changed = []
    for t in trajectories:
        rule, tolerance = rules.get(t.pk, default)
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
    flawless = [BatchItem.Outcome.CANDIDATE, BatchItem.Outcome.WRONG_FLAWLESS]
    for is_correct, outcome in ((True, flawless[0]), (False, flawless[1])):
        ids = [t.pk for t in changed if t.is_correct is is_correct]
        BatchItem.objects.filter(trajectory_id__in=ids, outcome__in=flawless).update(
            outcome=outcome
        )
    return counts


def problems_rejudge(*, problems: Iterable[Problem]) -> Rejudged:
    total = Rejudged()
    for problem in problems:
        total += trajectories_rejudge(problem=problem)
    return total
