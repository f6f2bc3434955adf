"""The review queue says the same thing in both places: beside "N awaiting review" it says how
many are free for this reviewer and why the rest are passed over (held by another reviewer,
decided by them, branches of their own hints), and "Nothing else awaits you" names the same."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from curation.models import Hint, ReviewLock
from curation.services.reviews import review_decide

pytestmark = pytest.mark.django_db


def test_nothing_else_awaits_you_explains_the_items_still_awaiting_review(
    client_for,
    reviewer,
    lead,
    make_trajectory,
):
    held = [make_trajectory(), make_trajectory()]
    until = timezone.now() + timedelta(minutes=30)
    for t in held:
        ReviewLock.objects.create(trajectory=t, reviewer=lead, locked_until=until)
    decided = make_trajectory()
    review_decide(trajectory=decided, decision="needs_work", by=reviewer)  # still open
    parent = make_trajectory()
    mine = make_trajectory(parent=parent, branch_step=0)
    Hint.objects.create(trajectory=parent, step_index=0, text="Wait.", branch=mine,
                        author_user=reviewer)  # fmt: skip
    ReviewLock.objects.create(trajectory=parent, reviewer=lead, locked_until=until)

    client = client_for(reviewer)
    page = client.get(reverse("curation-review-queue")).content.decode()
    assert '<span id="queue-count">5</span> awaiting review' in page
    assert '<strong id="queue-free">0</strong> free for you to review' in page
    said = page.split('id="queue-breakdown"', 1)[1].split("</p>", 1)[0]
    assert "3 held by another reviewer" in said
    assert "1 already decided by you" in said
    assert "1 branches with your hint in their lineage" in said

    response = client.post(reverse("curation-review-next"), follow=True)
    message = response.content.decode()
    assert "Nothing else awaits you" in message
    assert "of the 5 awaiting review, 3 held by another reviewer" in message

    # One lock lapses: the page counts it free, and "next" hands out exactly that one.
    ReviewLock.objects.filter(trajectory=held[0]).update(locked_until=timezone.now())
    page = client.get(reverse("curation-review-queue")).content.decode()
    assert '<strong id="queue-free">1</strong> free for you to review' in page
    response = client.post(reverse("curation-review-next"))
    assert response["Location"] == f"{held[0].get_absolute_url()}?from=queue"
