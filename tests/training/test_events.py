"""The worker reads a run's metrics file into the database while the file grows: whole lines
only, resumed steps replace earlier reports, garbage is recorded, never fatal."""

from __future__ import annotations

import json
import time

import pytest

from training.models import RunMetric, TrainingRun
from training.selectors import run_eta_s, run_phase
from training.services.events import MetricsTail, events_ingest, log_tail

pytestmark = pytest.mark.django_db


def step(n, elapsed, **values):
    return {"event": "step", "step": n, "max_steps": 10, "epoch": n / 10, "time": 0.0,
            "elapsed_s": elapsed, **values}  # fmt: skip


def test_the_tail_returns_whole_lines_once_and_keeps_garbage_as_invalid(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read() == []  # no file yet
    path.write_text(json.dumps(step(1, 1.0)) + "\n" + '{"event": "st')
    assert [e["step"] for e in tail.read()] == [1]
    assert tail.read() == []  # the half-written line waits for its newline
    with path.open("a") as fh:
        fh.write('ep", "step": 2}\nnot json at all\n')
    got = tail.read()
    assert got[0] == {"event": "step", "step": 2}
    assert got[1] == {"event": "invalid", "line": "not json at all"}


def test_events_become_progress_metrics_checkpoints_and_an_outcome(run):
    done = events_ingest(run, [
        {"event": "start", "kind": "sft", "max_steps": -1, "config": {"learning_rate": 1e-5}},
        step(1, 2.0, loss=2.5, learning_rate=1e-5),
        {"event": "log", "step": 1, "logs": {"loss": 2.5}},
        step(2, 4.0, loss=2.1),
        {"event": "checkpoint", "step": 2, "path": "/r/checkpoint-2"},
        {"event": "eval", "step": 2, "max_steps": 10, "metrics": {"eval_loss": 2.2}},
        {"event": "invalid", "line": "garbage"},
    ])  # fmt: skip
    assert done is None
    run.refresh_from_db()
    assert run.resolved_config == {"learning_rate": 1e-5}
    assert (run.step, run.max_steps, run.elapsed_s) == (2, 10, 4.0)
    assert run.checkpoint == "/r/checkpoint-2" and run.checkpoints == ["/r/checkpoint-2"]
    assert "[metrics file: not an event] garbage" in run.log_tail
    rows = {(m.event, m.step): m.values for m in RunMetric.objects.filter(run=run)}
    assert rows[("step", 1)] == {"loss": 2.5, "learning_rate": 1e-5}
    assert rows[("eval", 2)] == {"eval_loss": 2.2}

    # A resumed attempt reports step 2 again (its clock restarted): the new report wins.
    done = events_ingest(run, [
        step(2, 0.5, loss=1.9),
        {"event": "done", "status": "cancelled", "checkpoint": "/r/checkpoint-3"},
    ])  # fmt: skip
    assert done["status"] == "cancelled"
    run.refresh_from_db()
    assert RunMetric.objects.get(run=run, event="step", step=2).values == {"loss": 1.9}
    assert run.outcome == TrainingRun.Outcome.CANCELLED and run.checkpoint == "/r/checkpoint-3"


def test_the_eta_follows_the_recent_pace_of_the_current_attempt(run):
    events_ingest(run, [step(n, 2.0 * n) for n in range(1, 5)])  # 2 s a step
    run.refresh_from_db()
    assert run_eta_s(run) == pytest.approx(2.0 * 6)
    events_ingest(run, [step(5, 1.0), step(6, 1.5)])  # resumed: 0.5 s a step since then
    run.refresh_from_db()
    assert run_eta_s(run) == pytest.approx(0.5 * 4)


def test_the_log_tail_keeps_the_last_lines_and_turns_carriage_returns_into_lines(tmp_path):
    path = tmp_path / "a.log"
    path.write_text("".join(f"line {i}\n" for i in range(500)) + "10%\r50%\r100%\n")
    assert log_tail(path, lines=3) == "10%\n50%\n100%"
    assert log_tail(tmp_path / "missing.log", lines=3) == ""


def test_the_run_page_says_which_phase_an_evaluation_is_in_and_for_how_long(run, client_for, lead):
    from curation.models import Job

    Job.objects.filter(pk=run.job_id).update(status=Job.Status.RUNNING)
    started = time.time()
    events_ingest(run, [{"event": "phase", "phase": "loading", "time": started - 125}])
    run.refresh_from_db()
    assert run_phase(run, now=started)["label"] == "loading the model weights"
    page = client_for(lead).get(run.get_absolute_url()).content.decode()
    assert "loading the model weights" in page and "for 2 min 0" in page
    events_ingest(run, [
        {"event": "phase", "phase": "generating", "k": 4, "problems": 5, "samples": 20,
         "time": started - 30},
        {"event": "step", "step": 8, "max_steps": 20, "elapsed_s": 150.0},
    ])  # fmt: skip
    run.refresh_from_db()
    phase = run_phase(run, now=started)
    assert phase["label"] == "generating 4 samples of 5 problems: 8 of 20 samples done"
    assert phase["elapsed_s"] == pytest.approx(30, abs=1)
    page = client_for(lead).get(run.get_absolute_url(), HTTP_HX_REQUEST="true").content.decode()
    assert "8 of 20 samples done" in page and "loading the model" not in page
    events_ingest(run, [{"event": "phase", "phase": "scoring", "samples": 20, "time": started}])
    run.refresh_from_db()
    assert run_phase(run, now=started + 3) == {"name": "scoring", "label": "scoring 20 samples",
                                               "elapsed_s": pytest.approx(3)}  # fmt: skip
