"""Locks that hold: taking the next item of the queue (a POST) takes the lock, opening a page
(a GET) never does, the page shows the holder, only the holder labels, hints or decides, and a
lead's takeover is recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from curation.models import FlawLabel, Hint, LockTakeover, ReviewDecision, ReviewLock

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_reviewer(db):
    from tests.conftest import _make_user

    return _make_user("sam-reviewer", "reviewer")


@pytest.fixture
def held(make_trajectory, reviewer):
    """A trajectory rita-reviewer opened from the queue (she holds its lock)."""
    t = make_trajectory()
    ReviewLock.objects.create(
        trajectory=t, reviewer=reviewer, locked_until=timezone.now() + timedelta(minutes=30)
    )
    return t


def test_next_in_the_queue_takes_the_lock_and_the_page_shows_the_holder(
    client_for, reviewer, second_reviewer, make_trajectory
):
    t = make_trajectory()
    client = client_for(reviewer)
    opened = client.post(reverse("curation-review-next"), follow=True)  # a POST takes it
    assert opened.redirect_chain[-1][0] == f"{t.get_absolute_url()}?from=queue"
    assert ReviewLock.objects.get(trajectory=t).reviewer == reviewer
    assert "You hold the lock until" in opened.content.decode()
    client.force_login(second_reviewer)
    html = client.get(f"{t.get_absolute_url()}?from=queue").content.decode()
    assert "Locked by rita-reviewer until" in html
    assert "Someone else is reviewing this trajectory" in html
    assert ReviewLock.objects.get(trajectory=t).reviewer == reviewer


def test_opening_a_link_from_the_queue_takes_no_lock(client_for, reviewer, make_trajectory):
    # A GET changes nothing: a link (or a prefetch) of ?from=queue held the item 30 minutes.
    t = make_trajectory()
    html = client_for(reviewer).get(f"{t.get_absolute_url()}?from=queue").content.decode()
    assert not ReviewLock.objects.exists()
    assert "Not locked" in html


def test_a_label_by_someone_else_than_the_holder_is_refused_with_a_message(
    client_for, second_reviewer, held, taxonomy
):
    response = client_for(second_reviewer).post(
        reverse("curation-step-label", args=[held.pk, 0]), {"flaw_type": taxonomy[0].pk},
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert response.status_code == 409
    html = response.content.decode()
    assert html.strip().startswith('<article class="step card')  # swapped into the card
    assert "is being reviewed by rita-reviewer until" in html
    assert not FlawLabel.objects.exists()


def test_a_hint_or_a_decision_by_someone_else_is_refused(client_for, second_reviewer, held):
    client = client_for(second_reviewer)
    response = client.post(
        reverse("curation-hint-create", args=[held.pk]), {"step": 0, "text": "Use code."},
        follow=True,
    )  # fmt: skip
    assert "The hint was not inserted: Trajectory" in response.content.decode()
    assert not Hint.objects.exists()
    response = client.post(
        reverse("curation-trajectory-decide", args=[held.pk]), {"decision": "approved"},
        follow=True,
    )  # fmt: skip
    assert "Nothing was decided: Trajectory" in response.content.decode()
    assert not ReviewDecision.objects.exists()


def test_a_lead_is_refused_too_until_taking_over_which_is_recorded(
    client_for, lead, reviewer, held, taxonomy
):
    client = client_for(lead)
    url = reverse("curation-step-label", args=[held.pk, 0])
    assert client.post(url, {"flaw_type": taxonomy[0].pk}).status_code == 302
    assert not FlawLabel.objects.exists()
    html = client.get(held.get_absolute_url()).content.decode()
    assert 'id="take-over"' in html
    client.post(reverse("curation-lock-take-over", args=[held.pk]))
    takeover = LockTakeover.objects.get()
    assert (takeover.taken_by, takeover.taken_from) == (lead, reviewer)
    assert ReviewLock.objects.get(trajectory=held).reviewer == lead
    client.post(url, {"flaw_type": taxonomy[0].pk})
    assert FlawLabel.objects.get().author_user == lead
    html = client.get(held.get_absolute_url()).content.decode()
    assert "taken over by leo-lead from rita-reviewer" in html


def test_a_reviewer_cannot_take_over(client_for, second_reviewer, held):
    response = client_for(second_reviewer).post(reverse("curation-lock-take-over", args=[held.pk]))
    assert response.status_code == 403
    assert not LockTakeover.objects.exists()


def test_an_expired_lock_is_free_for_the_next_person(client_for, second_reviewer, held):
    ReviewLock.objects.filter(trajectory=held).update(locked_until=timezone.now())
    client_for(second_reviewer).post(
        reverse("curation-trajectory-decide", args=[held.pk]), {"decision": "rejected"}
    )
    assert ReviewDecision.objects.get().author == second_reviewer


def test_renewing_extends_the_holders_lock_only(client_for, reviewer, second_reviewer, held):
    ReviewLock.objects.filter(trajectory=held).update(
        locked_until=timezone.now() + timedelta(minutes=1)
    )
    client = client_for(reviewer)
    response = client.post(
        reverse("curation-lock-renew", args=[held.pk]), headers={"HX-Request": "true"}
    )
    assert response.content.decode().strip().startswith('<div id="lock-status"')
    until = ReviewLock.objects.get(trajectory=held).locked_until
    assert until > timezone.now() + timedelta(minutes=29)
    client.force_login(second_reviewer)
    html = client.post(
        reverse("curation-lock-renew", args=[held.pk]), headers={"HX-Request": "true"}
    ).content.decode()
    assert "Locked by rita-reviewer" in html
    assert ReviewLock.objects.get(trajectory=held).reviewer == reviewer


def test_a_leads_decision_can_be_changed_only_by_a_lead(
    client_for, lead, reviewer, make_trajectory
):
    t = make_trajectory()
    client = client_for(lead)
    client.post(reverse("curation-trajectory-decide", args=[t.pk]), {"decision": "rejected"})
    client.force_login(reviewer)
    response = client.post(
        reverse("curation-trajectory-decide", args=[t.pk]), {"decision": "approved"}, follow=True
    )
    assert "only a lead can change it" in response.content.decode()
    assert ReviewDecision.objects.count() == 1
    from tests.conftest import _make_user

    client.force_login(_make_user("lin-lead", "lead"))
    client.post(reverse("curation-trajectory-decide", args=[t.pk]), {"decision": "approved"})
    assert ReviewDecision.objects.count() == 2


def test_another_reviewer_cannot_resolve_comments_while_someone_holds_the_lock(
    client_for, held, lead, second_reviewer
):
    from curation.models import Comment

    comment = Comment.objects.create(trajectory=held, step_index=0, text="check this", author=lead)
    client = client_for(second_reviewer)
    client.post(reverse("curation-comment-resolve", args=[held.pk, comment.pk]))
    comment.refresh_from_db()
    assert comment.is_open


def test_another_reviewer_cannot_dismiss_suggestions_while_someone_holds_the_lock(
    client_for, held, second_reviewer
):
    from curation.models import Diagnosis, ModelEndpoint

    endpoint = ModelEndpoint.objects.create(name="judge", backend="openai", model="m")
    suggestion = Diagnosis.objects.create(trajectory=held, endpoint=endpoint, status="ok")
    client = client_for(second_reviewer)
    client.post(reverse("curation-suggestion-dismiss", args=[held.pk, suggestion.pk]))
    suggestion.refresh_from_db()
    assert not suggestion.dismissed
