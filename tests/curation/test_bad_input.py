"""Input that deserves a message, not a server error: digits that int() cannot read, and NUL
characters that PostgreSQL cannot store (run on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.models import Comment

pytestmark = pytest.mark.django_db


def test_a_superscript_digit_where_a_number_is_expected_is_read_as_no_number(
    client_for, reviewer, make_trajectory
):
    # "²".isdigit() is true but int("²") raises: both views used to answer 500.
    t = make_trajectory()
    client = client_for(reviewer)
    response = client.post(
        reverse("curation-comment-create", args=[t.pk]), {"step": "²", "text": "Overall ok"}
    )
    assert response.status_code == 302
    assert Comment.objects.get().step_index is None
    response = client.post(reverse("curation-review-next"), {"current": "²"})
    assert response.status_code == 302


def test_a_nul_character_in_a_form_is_refused_with_a_message_and_nothing_saved(
    client_for, reviewer, make_trajectory
):
    t = make_trajectory()
    client = client_for(reviewer)
    response = client.post(
        reverse("curation-comment-create", args=[t.pk]), {"step": "1", "text": "bad\x00text"}
    )
    assert response.status_code == 400
    assert "NUL character" in response.content.decode()
    assert not Comment.objects.exists()
    response = client.get(reverse("curation-review-queue"), {"benchmark": "a\x00b"})
    assert response.status_code == 400
