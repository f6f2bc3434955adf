""" "Golden" means one thing: the trajectory page's badge says "golden" exactly for the
trajectories the Datasets page counts (``selectors.datasets.golden_trajectories``); one that
passed review but is outside the golden set reads "approved, not golden" and says why."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from curation.models import Diagnosis, ModelEndpoint, ReviewDecision
from curation.selectors.datasets import golden_trajectories

pytestmark = pytest.mark.django_db


def _badge(html: str) -> str:
    match = re.search(
        r'<span class="badge review-(\w+)" id="review-state"[^>]*>([^<]*)</span>', html
    )
    assert match, "no review badge"
    return f"{match.group(1)}|{match.group(2)}"


def test_the_badge_says_golden_exactly_when_the_datasets_page_counts_it(
    client_for, reviewer, lead, make_trajectory
):
    judge = ModelEndpoint.objects.create(name="judge", backend="openai", model="m")
    golden = make_trajectory()
    unjudged = make_trajectory()  # approved, correct, but no verdict from the Intervener
    wrong = make_trajectory(is_correct=False, final_answer="12")
    flawed = make_trajectory()
    open_one = make_trajectory()
    for t, flawless in ((golden, True), (wrong, True), (flawed, False), (open_one, True)):
        Diagnosis.objects.create(trajectory=t, endpoint=judge, status="ok", flawless=flawless)
    for t in (golden, unjudged, wrong, flawed):
        ReviewDecision.objects.create(trajectory=t, decision="approved", author=lead, by_lead=True)

    client = client_for(reviewer)
    badges = {t.pk: _badge(client.get(t.get_absolute_url()).content.decode()) for t in
              (golden, unjudged, wrong, flawed, open_one)}  # fmt: skip
    said_golden = {pk for pk, badge in badges.items() if badge.startswith("golden|golden")}
    assert said_golden == set(golden_trajectories().values_list("pk", flat=True)) == {golden.pk}
    for t in (unjudged, wrong, flawed):
        assert badges[t.pk].startswith("approved|approved, not golden"), badges[t.pk]
    assert badges[open_one.pk].startswith("open|open")

    datasets = client.get(reverse("curation-dataset-list")).content.decode()
    assert '<strong id="golden-count">1</strong>' in datasets

    page = client.get(unjudged.get_absolute_url()).content.decode()
    assert "awaiting a flawless verdict" in page.split('id="golden-missing"', 1)[1][:300]
    page = client.get(wrong.get_absolute_url()).content.decode()
    assert "the answer is incorrect" in page.split('id="golden-missing"', 1)[1][:300]
