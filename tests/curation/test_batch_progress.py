"""What the batch page tells about a running batch: each item's state in words, and an ETA
from how long the finished items took."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from curation.models import Batch, BatchItem, ModelEndpoint, Trajectory
from curation.services.batches import _claim, batch_progress

pytestmark = pytest.mark.django_db


def make_batch(problem, n: int, concurrency: int = 1) -> Batch:
    model = ModelEndpoint.objects.create(name="m", backend="scripted", model="x")
    batch = Batch.objects.create(
        name="b", reasoner=model, intervener=model, config={"concurrency": concurrency}
    )
    for i in range(n):
        BatchItem.objects.create(batch=batch, problem=problem, sample_index=i)
    return batch


def finish(item: BatchItem, took_s: float, ended_s_ago: float = 0.0, **fields) -> None:
    end = timezone.now() - timedelta(seconds=ended_s_ago)
    BatchItem.objects.filter(pk=item.pk).update(
        state=BatchItem.State.DONE, started_at=end - timedelta(seconds=took_s), finished_at=end,
        **fields,
    )  # fmt: skip


def test_the_eta_comes_from_the_finished_items_durations(problem):
    batch = make_batch(problem, 4, concurrency=1)
    first, second, running, _queued = BatchItem.objects.filter(batch=batch)
    assert batch_progress(batch)["eta_s"] is None  # nothing timed yet
    finish(first, took_s=100)
    progress = batch_progress(batch)
    assert (progress["done"], progress["mean_item_s"]) == (1, 100)
    assert progress["eta_s"] == 300  # three items left, one at a time
    finish(second, took_s=60)
    BatchItem.objects.filter(pk=running.pk).update(
        state=BatchItem.State.RUNNING, started_at=timezone.now() - timedelta(seconds=30)
    )
    progress = batch_progress(batch)
    assert progress["mean_item_s"] == 80 and progress["eta_s"] == pytest.approx(50 + 80, abs=1)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PAUSED)
    batch.refresh_from_db()
    assert batch_progress(batch)["eta_s"] is None  # a paused batch is not getting closer


def test_a_claim_records_when_an_item_started_once(problem):
    batch = make_batch(problem, 1)
    (item,) = _claim(batch, 1)
    started = BatchItem.objects.get(pk=item.pk).started_at
    assert started is not None
    BatchItem.objects.filter(pk=item.pk).update(state=BatchItem.State.WAITING)  # next phase
    _claim(batch, 1)
    assert BatchItem.objects.get(pk=item.pk).started_at == started


def test_each_item_says_where_it_stands(problem):
    batch = make_batch(problem, 1)
    item = BatchItem.objects.get(batch=batch)
    assert item.activity == "queued"
    item.state = BatchItem.State.RUNNING
    assert item.activity == "generating"
    item.phase = BatchItem.Phase.DIAGNOSE
    assert item.activity == "diagnosing"
    item.phase, item.rounds = BatchItem.Phase.INTERVENE, 1
    assert item.activity == "hinted 1 time · continuing after hint 2"
    item.phase, item.rounds = BatchItem.Phase.DIAGNOSE, 2
    assert item.activity == "hinted 2 times · diagnosing"
    trajectory = Trajectory.objects.create(problem=problem, prompt_tokens=b"",
                                           completion_tokens=b"", is_correct=True)  # fmt: skip
    item.state, item.trajectory = BatchItem.State.DONE, trajectory
    assert item.activity == "done · correct · hinted 2 times"
    item.state, item.error_kind = BatchItem.State.FAILED, "endpoint"
    assert item.activity == "failed (endpoint)"


def test_the_batch_page_lists_every_item_with_its_state_and_the_eta(problem, client_for,
                                                                   reviewer):  # fmt: skip
    batch = make_batch(problem, 3)
    done, *_ = BatchItem.objects.filter(batch=batch)
    finish(done, took_s=125)
    page = client_for(reviewer).get(batch.get_absolute_url(), HTTP_HX_REQUEST="true")
    html = page.content.decode()
    assert 'id="batch-eta"' in html and "ETA 4 min 10 s" in html
    assert html.count('class="item-activity">queued<') == 2 and "1 / 3 items finished" in html
