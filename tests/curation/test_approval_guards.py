"""Approving as golden is guarded: refused over the approver's own flaw label (they would
contradict themselves), and held for explicit, recorded confirmation over anyone else's flaw
label or over model text copied word for word from its system prompt or worked example."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.engine import prompts
from curation.engine.copying import copied_passages
from curation.models import ModelEndpoint, ReviewDecision
from curation.services.labels import flaw_label_set
from curation.services.reviews import ApprovalNeedsConfirmation, ReviewError, review_decide

from .conftest import STEPS, step

pytestmark = pytest.mark.django_db


def _flaw(taxonomy, code="manual_computation"):
    return next(ft for ft in taxonomy if ft.code == code)


def test_an_approver_cannot_approve_over_their_own_flaw_label(make_trajectory, reviewer, taxonomy):
    t = make_trajectory()
    flaw_label_set(trajectory=t, step_index=1, flaw_type=_flaw(taxonomy), by_user=reviewer)
    with pytest.raises(ReviewError, match="Clear or change your own label"):
        review_decide(trajectory=t, decision="approved", by=reviewer, confirm=True)
    assert not ReviewDecision.objects.filter(trajectory=t).exists()
    flaw_label_set(trajectory=t, step_index=1, flaw_type=None, by_user=reviewer)  # cleared
    assert review_decide(trajectory=t, decision="approved", by=reviewer).decision == "approved"


def test_anothers_or_a_models_flaw_label_needs_recorded_confirmation(
    make_trajectory, reviewer, lead, taxonomy
):
    t = make_trajectory()
    judge = ModelEndpoint.objects.create(name="judge", backend="openai", model="m")
    flaw_label_set(trajectory=t, step_index=0, flaw_type=_flaw(taxonomy), by_user=lead)
    flaw_label_set(trajectory=t, step_index=2, flaw_type=_flaw(taxonomy), by_endpoint=judge)
    with pytest.raises(ApprovalNeedsConfirmation) as refused:
        review_decide(trajectory=t, decision="approved", by=reviewer)
    assert len(refused.value.concerns) == 2
    assert "step 1" in str(refused.value) and "step 3" in str(refused.value)
    assert not ReviewDecision.objects.filter(trajectory=t).exists()
    made = review_decide(trajectory=t, decision="approved", by=reviewer, reason="ok", confirm=True)
    assert made.reason.startswith("ok [approved over: flaw label on step 1")
    # Other decisions are never held up.
    assert review_decide(trajectory=t, decision="rejected", by=reviewer).decision == "rejected"


def test_text_copied_from_the_worked_example_needs_confirmation(make_trajectory, reviewer):
    recited = prompts.WORKED_EXAMPLE_SOLUTION[:600]
    t = make_trajectory(steps=[step(0, "Let me think. " + recited), STEPS[-1]])
    with pytest.raises(ApprovalNeedsConfirmation, match="copies the demo worked example"):
        review_decide(trajectory=t, decision="approved", by=reviewer)
    copied = make_trajectory(steps=[step(0, prompts.REASONER_SYSTEM_PROMPT[:400])])
    with pytest.raises(ApprovalNeedsConfirmation, match="system prompt"):
        review_decide(trajectory=copied, decision="approved", by=reviewer)
    # Its own words (and a phrase it shares with the prompt) are fine.
    clean = make_trajectory()
    assert review_decide(trajectory=clean, decision="approved", by=reviewer).reason == ""


def test_copied_passages_are_found_and_short_shared_phrases_are_not():
    source = {"the prompt": "one two three four five six seven eight nine ten eleven twelve 13"}
    assert (
        copied_passages("x one two three four five six seven eight nine ten eleven", source) == []
    )
    found = copied_passages(
        "a one two three four five six seven eight nine ten eleven twelve 13 b", source
    )
    assert [(c.source, c.words) for c in found] == [("the prompt", 13)]


def test_the_page_warns_the_approver_and_the_form_asks_for_confirmation(
    client_for, make_trajectory, reviewer, lead, taxonomy
):
    t = make_trajectory()
    flaw_label_set(trajectory=t, step_index=1, flaw_type=_flaw(taxonomy), by_user=lead)
    client = client_for(reviewer)
    page = client.get(t.get_absolute_url()).content.decode()
    warnings = page.split('id="approval-warnings"', 1)[1].split("</ul>", 1)[0]
    assert "flaw label on step 2" in warnings
    assert 'name="confirm"' in page
    url = reverse("curation-trajectory-decide", args=[t.pk])
    response = client.post(url, {"decision": "approved"}, follow=True)
    assert "needs your confirmation" in response.content.decode()
    assert not ReviewDecision.objects.filter(trajectory=t).exists()
    client.post(url, {"decision": "approved", "confirm": "1"})
    assert ReviewDecision.objects.get(trajectory=t).decision == "approved"


def test_the_page_says_the_approver_must_clear_their_own_label(
    client_for, make_trajectory, reviewer, taxonomy
):
    t = make_trajectory()
    flaw_label_set(trajectory=t, step_index=1, flaw_type=_flaw(taxonomy), by_user=reviewer)
    client = client_for(reviewer)
    assert 'id="approval-own"' in client.get(t.get_absolute_url()).content.decode()
    url = reverse("curation-trajectory-decide", args=[t.pk])
    response = client.post(url, {"decision": "approved", "confirm": "1"}, follow=True)
    assert "Clear or change your own label" in response.content.decode()
    assert not ReviewDecision.objects.filter(trajectory=t).exists()
