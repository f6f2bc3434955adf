"""A reviewer watches a running batch: each item's state and the ETA change in place as the
items move (the page polls with htmx; the test moves the rows as a driver would)."""

from __future__ import annotations

import pytest

from curation.models import BatchItem
from tests.browser.test_review_flow import login
from tests.curation.test_batch_progress import finish, make_batch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_batch_eta_appears_once_an_item_finishes_and_follows_the_items(
    live_server, page, reviewer, problem
):
    batch = make_batch(problem, 3)
    first, second, _third = BatchItem.objects.filter(batch=batch)
    login(page, live_server)
    page.goto(live_server.url + batch.get_absolute_url())
    page.wait_for_selector("#batch-eta-pending")
    assert page.inner_text(f"#item-{first.pk} .item-activity") == "queued"

    BatchItem.objects.filter(pk=second.pk).update(state=BatchItem.State.RUNNING)
    finish(first, took_s=30)  # two items left, one at a time: 2 × 30 s
    page.wait_for_selector("#batch-eta:text('ETA 1 min 00 s')")
    assert page.inner_text(f"#item-{second.pk} .item-activity") == "generating"
    assert "1 / 3 items finished" in page.inner_text("#batch-count")

    finish(second, took_s=150)  # the mean is now 90 s, for the one item left
    page.wait_for_selector("#batch-eta:text('ETA 1 min 30 s')")
    assert page.inner_text(f"#item-{second.pk} .item-activity") == "done · not judged"
    assert "2 / 3 items finished" in page.inner_text("#batch-count")
