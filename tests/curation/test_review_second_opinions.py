"""Second opinions: golden needs the configured number of approvals from distinct people who
did not write the branch's hint; approve against reject goes to adjudication for leads."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.models import (
    Batch,
    BatchItem,
    BatchReviewPolicy,
    Diagnosis,
    Hint,
    ReviewDecision,
)
from curation.selectors.datasets import golden_trajectories
from curation.selectors.reviews import review_queue, review_state_of
from curation.services.reviews import ReviewError, review_decide, review_next

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast(db):
    from tests.conftest import _make_user

    return {name: _make_user(name, "reviewer") for name in ("ann", "ben", "cat")}


@pytest.fixture
def candidate(make_trajectory):
    """A correct trajectory the Intervener judged flawless: only the human gate is left."""
    t = make_trajectory(is_correct=True)
    Diagnosis.objects.create(trajectory=t, status="ok", flawless=True)
    return t


def test_one_approval_is_enough_by_default(candidate, cast):
    review_decide(trajectory=candidate, decision="approved", by=cast["ann"])
    assert list(golden_trajectories()) == [candidate]


def test_golden_needs_the_configured_approvals_from_distinct_people(settings, candidate, cast):
    settings.REVIEW_REQUIRED_APPROVALS = 2
    review_decide(trajectory=candidate, decision="approved", by=cast["ann"])
    review_decide(trajectory=candidate, decision="approved", by=cast["ann"])  # same person again
    state = review_state_of(candidate)
    assert (state.review_state, state.n_approvals, state.required_approvals) == ("open", 1, 2)
    assert not golden_trajectories().exists()
    review_decide(trajectory=candidate, decision="approved", by=cast["ben"])
    assert list(golden_trajectories()) == [candidate]


def test_the_author_of_the_hint_never_counts_as_an_approval(make_trajectory, cast):
    parent = make_trajectory(is_correct=False)
    branch = make_trajectory(is_correct=True, parent=parent, branch_step=1)
    Diagnosis.objects.create(trajectory=branch, status="ok", flawless=True)
    Hint.objects.create(
        trajectory=parent, step_index=1, text="Use code.", branch=branch, author_user=cast["ann"]
    )
    with pytest.raises(ReviewError, match="you wrote the hint"):
        review_decide(trajectory=branch, decision="approved", by=cast["ann"])
    # An approval recorded before that refusal existed does not count either.
    ReviewDecision.objects.create(trajectory=branch, decision="approved", author=cast["ann"])
    assert review_state_of(branch).n_approvals == 0
    assert not golden_trajectories().exists()
    review_decide(trajectory=branch, decision="approved", by=cast["ben"])
    assert list(golden_trajectories()) == [branch]


@pytest.fixture
def hinted_twice(make_trajectory, cast):
    """ann hinted the root (branch one); ben hinted branch one after her (branch two)."""
    root = make_trajectory(is_correct=False)
    one = make_trajectory(is_correct=False, parent=root, branch_step=1)
    two = make_trajectory(is_correct=True, parent=one, branch_step=2)
    Diagnosis.objects.create(trajectory=two, status="ok", flawless=True)
    Hint.objects.create(
        trajectory=root, step_index=1, text="Use code.", branch=one, author_user=cast["ann"]
    )
    Hint.objects.create(trajectory=one, step_index=2, text="Check the bound.", branch=two,
                        author_user=cast["ben"])  # fmt: skip
    return root, one, two


def test_a_reviewer_cannot_approve_a_branch_with_their_hint_anywhere_in_its_lineage(
    client_for, hinted_twice, cast
):
    # ben's hint came after ann's: the branch's own hint is ben's, but ann's is still in it.
    _root, one, two = hinted_twice
    response = client_for(cast["ann"]).post(
        reverse("curation-trajectory-decide", args=[two.pk]), {"decision": "approved"},
        follow=True,
    )  # fmt: skip
    html = response.content.decode()
    assert "Nothing was decided" in html and f"trajectory #{one.pk}" in html
    assert not ReviewDecision.objects.exists()
    assert not golden_trajectories().exists()
    # The page tells her so before she tries; it tells no one else.
    page = client_for(cast["ann"]).get(two.get_absolute_url()).content.decode()
    assert 'id="own-hint-note"' in page and f"#{one.pk}</a>, in this branch's lineage" in page
    page = client_for(cast["cat"]).get(two.get_absolute_url()).content.decode()
    assert 'id="own-hint-note"' not in page
    # She may still reject it or ask for work; another reviewer approves it.
    review_decide(trajectory=two, decision="needs_work", by=cast["ann"])
    review_decide(trajectory=two, decision="approved", by=cast["cat"])
    assert review_state_of(two).n_approvals == 1


def test_the_queue_does_not_hand_a_reviewer_a_branch_with_their_hint_in_its_lineage(
    hinted_twice, cast
):
    root, _one, two = hinted_twice
    queue = review_queue(reviewer=cast["ann"])
    assert two.pk in set(queue.values_list("pk", flat=True))  # it awaits review...
    handed = [review_next(reviewer=cast["ann"], queue=review_queue(reviewer=cast["ann"]))]
    handed.append(review_next(reviewer=cast["ann"], queue=review_queue(reviewer=cast["ann"])))
    assert handed == [root, None]  # ...but not from her: one and two both carry her hint


def make_batch(lead):
    from curation.models import ModelEndpoint

    model = ModelEndpoint.objects.create(name="m", backend="openai", model="m")
    return Batch.objects.create(name="b", created_by=lead, reasoner=model, intervener=model)


def test_a_batch_sets_its_own_number_of_approvals(candidate, cast, lead, problem):
    batch = make_batch(lead)
    BatchItem.objects.create(batch=batch, problem=problem, trajectory=candidate)
    client_url = reverse("curation-batch-review-policy", args=[batch.pk])
    from django.test import Client

    client = Client()
    client.force_login(lead)
    client.post(client_url, {"required_approvals": 3})
    assert BatchReviewPolicy.objects.get(batch=batch).required_approvals == 3
    for name in ("ann", "ben"):
        review_decide(trajectory=candidate, decision="approved", by=cast[name])
    assert not golden_trajectories().exists()
    review_decide(trajectory=candidate, decision="approved", by=cast["cat"])
    assert golden_trajectories().get() == candidate


def test_a_reviewer_cannot_set_a_batchs_approvals(client_for, reviewer, lead):
    batch = make_batch(lead)
    response = client_for(reviewer).post(
        reverse("curation-batch-review-policy", args=[batch.pk]), {"required_approvals": 3}
    )
    assert response.status_code == 403 and not BatchReviewPolicy.objects.exists()


def test_a_disagreement_goes_to_adjudication_and_a_lead_settles_it(
    settings, client_for, candidate, cast, lead
):
    settings.REVIEW_REQUIRED_APPROVALS = 2
    review_decide(trajectory=candidate, decision="approved", by=cast["ann"], reason="clean")
    review_decide(trajectory=candidate, decision="rejected", by=cast["ben"], reason="step 2 off")
    assert review_state_of(candidate).review_state == "disputed"
    client = client_for(lead)
    html = client.get(reverse("curation-review-adjudication")).content.decode()
    assert f'id="dispute-{candidate.pk}"' in html
    assert "by ann" in html and "clean" in html and "by ben" in html and "step 2 off" in html
    client.post(
        reverse("curation-trajectory-decide", args=[candidate.pk]), {"decision": "approved"}
    )
    assert review_state_of(candidate).review_state == "golden"
    assert golden_trajectories().get() == candidate
    html = client.get(reverse("curation-review-adjudication")).content.decode()
    assert f'id="dispute-{candidate.pk}"' not in html


def test_the_adjudication_view_is_for_leads(client_for, reviewer):
    response = client_for(reviewer).get(reverse("curation-review-adjudication"))
    assert response.status_code == 403


def test_a_decided_trajectory_leaves_the_queue(client_for, candidate, cast):
    client = client_for(cast["ann"])
    client.post(
        reverse("curation-trajectory-decide", args=[candidate.pk]), {"decision": "rejected"}
    )
    html = client.get(reverse("curation-review-queue")).content.decode()
    assert 'id="queue-count">0<' in html
