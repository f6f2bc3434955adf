"""The review queue hands out work: n gives the next item not just seen, within the
reviewer's filters; leads assign items or a whole filter to named reviewers."""

from __future__ import annotations

import pytest
from django.urls import reverse

from curation.models import ReviewAssignment, ReviewLock

pytestmark = pytest.mark.django_db


def opened(response) -> int:
    """The trajectory id a "next" redirect opens."""
    assert response.status_code == 302, response
    location = response["Location"]
    assert "/trajectories/" in location, location
    return int(location.split("/trajectories/")[1].split("/")[0])


def press_n(client, current=None) -> int:
    data = {} if current is None else {"current": current}
    return opened(client.post(reverse("curation-review-next"), data))


@pytest.fixture
def second_reviewer(db):
    from tests.conftest import _make_user

    return _make_user("sam-reviewer", "reviewer")


def test_it_never_hands_back_the_item_just_seen(client_for, reviewer, make_trajectory):
    items = [make_trajectory().pk for _ in range(4)]
    client = client_for(reviewer)
    first = press_n(client)
    second = press_n(client, current=first)
    third = press_n(client, current=second)
    assert [first, second, third] == items[:3]
    # The items passed over stay on this reviewer's desk (locked) until decided or expired.
    assert set(ReviewLock.objects.values_list("trajectory_id", flat=True)) == set(items[:3])


def test_needs_work_then_next_gives_another_item(client_for, reviewer, make_trajectory):
    first, second = make_trajectory(), make_trajectory()
    client = client_for(reviewer)
    assert press_n(client) == first.pk
    response = client.post(
        reverse("curation-trajectory-decide", args=[first.pk]),
        {"decision": "needs_work", "next": "queue"},
    )
    assert opened(response) == second.pk


def test_next_after_a_decision_stays_within_the_chosen_filters(
    client_for, reviewer, make_trajectory
):
    make_trajectory(is_correct=True)
    wrong_a = make_trajectory(is_correct=False)
    make_trajectory(is_correct=True)
    wrong_b = make_trajectory(is_correct=False)
    client = client_for(reviewer)
    client.get(reverse("curation-review-queue"), {"correctness": "incorrect"})
    assert press_n(client) == wrong_a.pk
    response = client.post(
        reverse("curation-trajectory-decide", args=[wrong_a.pk]),
        {"decision": "approved", "next": "queue"},
    )
    assert opened(response) == wrong_b.pk


def test_two_reviewers_never_get_each_others_items(
    client, reviewer, second_reviewer, make_trajectory
):
    from django.test import Client

    for _ in range(6):
        make_trajectory()
    rita, sam = Client(), Client()
    rita.force_login(reviewer)
    sam.force_login(second_reviewer)
    got = {"rita": [], "sam": []}
    for _ in range(3):
        got["rita"].append(press_n(rita, got["rita"][-1] if got["rita"] else None))
        got["sam"].append(press_n(sam, got["sam"][-1] if got["sam"] else None))
    assert len(set(got["rita"])) == 3 and len(set(got["sam"])) == 3
    assert not set(got["rita"]) & set(got["sam"])


def test_an_empty_queue_says_so(client_for, reviewer):
    response = client_for(reviewer).post(reverse("curation-review-next"), follow=True)
    assert "Nothing else awaits you" in response.content.decode()


def test_what_a_lead_assigns_comes_first_in_that_reviewers_queue(
    client_for, reviewer, second_reviewer, lead, make_trajectory
):
    items = [make_trajectory() for _ in range(3)]
    client = client_for(lead)
    client.post(
        reverse("curation-review-assign"),
        {"reviewer": reviewer.pk, "trajectory": [items[2].pk], "scope": "selected"},
    )
    assert ReviewAssignment.objects.get().trajectory == items[2]
    client.force_login(reviewer)
    assert press_n(client) == items[2].pk
    html = client.get(reverse("curation-review-queue")).content.decode()
    assert html.index(f"#{items[2].pk}<") < html.index(f"#{items[0].pk}<")
    client.force_login(second_reviewer)  # not assigned to sam: his order is unchanged
    assert press_n(client) == items[0].pk


def test_a_lead_assigns_a_whole_filter(client_for, lead, reviewer, make_trajectory):
    wrong = [make_trajectory(is_correct=False) for _ in range(2)]
    make_trajectory(is_correct=True)
    response = client_for(lead).post(
        reverse("curation-review-assign"),
        {"reviewer": reviewer.pk, "scope": "filter", "correctness": "incorrect"},
        follow=True,
    )
    assert "Assigned 2 trajectories to rita-reviewer" in response.content.decode()
    assigned = set(ReviewAssignment.objects.values_list("trajectory_id", flat=True))
    assert assigned == {t.pk for t in wrong}


def test_a_reviewer_cannot_assign(client_for, reviewer, make_trajectory):
    t = make_trajectory()
    response = client_for(reviewer).post(
        reverse("curation-review-assign"), {"reviewer": reviewer.pk, "trajectory": [t.pk]}
    )
    assert response.status_code == 403 and not ReviewAssignment.objects.exists()


def test_the_queue_has_page_links_that_keep_the_filters(client_for, reviewer, make_trajectory):
    for _ in range(51):
        make_trajectory(is_correct=False)
    client = client_for(reviewer)
    html = client.get(reverse("curation-review-queue"), {"correctness": "incorrect"}).content
    html = html.decode()
    assert 'id="queue-pages"' in html and 'href="?correctness=incorrect&page=2"' in html
    fragment = client.get(
        reverse("curation-review-queue"), {"correctness": "incorrect", "page": 2},
        headers={"HX-Request": "true"},
    ).content.decode()  # fmt: skip
    assert "<html" not in fragment and 'aria-current="page">2<' in fragment
