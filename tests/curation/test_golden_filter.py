"""The golden filter's three clauses, each able to fail on its own: a correct answer, the
Intervener's LATEST verdict flawless, and the human gate; an evaluation's samples never."""

from __future__ import annotations

import pytest

from curation.models import Diagnosis
from curation.selectors.datasets import golden_trajectories
from curation.services.reviews import review_decide

pytestmark = pytest.mark.django_db


@pytest.fixture
def approved(make_trajectory, lead):
    """A correct trajectory a person approved: only the verdict clause is left to decide."""

    def make(**fields):
        t = make_trajectory(is_correct=True, **fields)
        review_decide(trajectory=t, decision="approved", by=lead)
        return t

    return make


def _verdict(t, flawless):
    return Diagnosis.objects.create(trajectory=t, status="ok", flawless=flawless)


def test_a_correct_approved_trajectory_judged_flawless_is_golden(approved):
    t = approved()
    _verdict(t, True)
    assert list(golden_trajectories()) == [t]


def test_a_correct_approved_trajectory_whose_latest_verdict_is_flawed_is_not_flawless_golden(
    approved,
):
    t = approved()
    _verdict(t, False)
    assert not golden_trajectories().exists()


def test_a_correct_approved_trajectory_with_no_verdict_is_not_flawless_golden(approved):
    t = approved()
    assert not golden_trajectories().exists()
    Diagnosis.objects.create(trajectory=t, status="error", error="garbage")  # no verdict either
    assert not golden_trajectories().exists()


def test_the_latest_verdict_wins_over_an_earlier_flawless_one(approved):
    t = approved()
    _verdict(t, True)
    assert list(golden_trajectories()) == [t]
    _verdict(t, False)  # a second look found a flaw
    assert not golden_trajectories().exists()
    _verdict(t, True)  # and a third cleared it again
    assert list(golden_trajectories()) == [t]


def test_a_flawless_verdict_on_a_wrong_answer_is_not_golden(make_trajectory, lead):
    t = make_trajectory(is_correct=False)
    review_decide(trajectory=t, decision="approved", by=lead)
    _verdict(t, True)
    assert not golden_trajectories().exists()


def test_an_evaluations_sample_is_never_golden_even_flawless_and_approved(approved):
    t = approved(source="evaluated")
    _verdict(t, True)
    assert not golden_trajectories().exists()
