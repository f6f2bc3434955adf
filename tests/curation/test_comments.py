"""Comment threads: per step and per trajectory, author and time, in the step's history, and
named in the dataset card while a golden trajectory has open comments."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.models import Comment

pytestmark = pytest.mark.django_db


def test_a_step_comment_round_trips_through_htmx(client_for, reviewer, make_trajectory):
    t = make_trajectory()
    client = client_for(reviewer)
    response = client.post(
        reverse("curation-comment-create", args=[t.pk]),
        {"step": 1, "text": "Is 40 the right price for chairs?"},
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert html.strip().startswith('<div class="comments" id="comments-1">')
    assert "Is 40 the right price for chairs?" in html and "rita-reviewer" in html
    comment = Comment.objects.get()
    assert (comment.step_index, comment.author, comment.is_open) == (1, reviewer, True)
    page = client.get(t.get_absolute_url()).content.decode()
    assert "Is 40 the right price for chairs?" in page and "Comments (1)" in page
    history = client.get(reverse("curation-step-history", args=[t.pk, 1])).content.decode()
    assert "Is 40 the right price for chairs?" in history and "open" in history


def test_a_trajectory_comment_without_htmx_and_its_resolution(
    client_for, reviewer, lead, make_trajectory
):
    t = make_trajectory()
    client = client_for(reviewer)
    response = client.post(reverse("curation-comment-create", args=[t.pk]), {"text": "Overall ok"})
    assert response.status_code == 302 and response["Location"].endswith("#comments-t")
    comment = Comment.objects.get()
    assert comment.step_index is None
    client.force_login(lead)
    client.post(reverse("curation-comment-resolve", args=[t.pk, comment.pk]))
    comment.refresh_from_db()
    assert not comment.is_open and comment.resolved_by == lead
    page = client.get(t.get_absolute_url()).content.decode()
    assert "resolved by leo-lead" in page


def test_an_empty_comment_is_refused_with_a_visible_error(client_for, reviewer, make_trajectory):
    t = make_trajectory()
    response = client_for(reviewer).post(
        reverse("curation-comment-create", args=[t.pk]), {"step": 0, "text": "  "},
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "A comment needs some text." in response.content.decode()
    assert not Comment.objects.exists()


def test_the_dataset_card_names_golden_trajectories_with_open_comments(reviewer, make_trajectory):
    from curation.services.datasets import dataset_card

    clean, discussed = make_trajectory(), make_trajectory()
    Comment.objects.create(trajectory=discussed, step_index=0, text="check", author=reviewer)
    Comment.objects.create(
        trajectory=clean, text="done", author=reviewer, resolved_at="2026-01-01T00:00Z"
    )
    counts = {"trajectories": 2, "problems": 1, "tokens": {}}
    summary = {"token_modification_ratio": None, "train_on_hints": True}
    card = dataset_card("v1", "", [clean, discussed], counts, summary, "0" * 64, {})
    assert "## Open review comments" in card
    assert f"1 trajectories still have open comments: #{discussed.pk}." in card
    card = dataset_card("v1", "", [clean], counts, summary, "0" * 64, {})
    assert "Open review comments" not in card
