"""Both branching paths (a reviewer's hint, the batch loop) share the engine's branch point: a
branch never replays a cell that timed out. The parent is the SCRIPTED STAND-IN for a language
model (named as such); every cell runs in the real sandbox with a real time limit."""

from __future__ import annotations

import json

import pytest

from curation.models import BatchRound, ModelEndpoint, Trajectory
from curation.services.batches import batch_advance, batch_create
from curation.services.hints import continue_job_run, hint_insert
from curation.services.trajectories import generate_job_run, trajectories_generate

pytestmark = pytest.mark.django_db(transaction=True)

SLOW = "import time\nwhile True:\n    time.sleep(0.05)"
PARENT = (
    f"Try.\n```python\n{SLOW}\n```\n"
    "Again.\n```python\na = 21\nprint(a)\n```\n"
    "Hm.\n```python\nprint(a + 1)\n```\n"
    "</think>\\boxed{22}"
)
# The hint carries a whole code block, run right after it: it needs cell 1 replayed and would
# time out if cell 0 were replayed too.
HINT = "Let me print the objective.\n```python\nprint('OBJECTIVE_VALUE:', a * 2)\n```\n"


@pytest.fixture
def reasoner(tiny_model_path):
    return ModelEndpoint.objects.create(
        name="scripted-reasoner", backend="scripted", model=str(tiny_model_path),
        tokenizer=str(tiny_model_path), role="reasoner",
        sampling={"code_timeout_s": 2, "max_new_tokens": 600},
        extra={"completions": [PARENT]},
    )  # fmt: skip


def _parent(problem, reasoner) -> Trajectory:
    job = trajectories_generate(problems=[problem], endpoint=reasoner, enqueue=False)
    assert generate_job_run(job_id=job.pk, worker="test").status == "succeeded"
    parent = Trajectory.objects.get(job=job)
    assert [s["result"]["status"] for s in parent.steps[:3]] == ["timeout", "ok", "ok"]
    return parent


def _new_cell(branch: Trajectory) -> dict:
    cell = branch.steps[2]
    assert "a * 2" in cell["code"]
    return cell


def test_a_reviewer_s_hint_never_replays_a_timed_out_cell(problem, reasoner, taxonomy):
    parent = _parent(problem, reasoner)
    hint = hint_insert(trajectory=parent, step_index=2, text=HINT, endpoint=reasoner,
                       enqueue=False)  # fmt: skip
    assert continue_job_run(job_id=hint.job_id, worker="test").status == "succeeded"
    hint.refresh_from_db()
    cell = _new_cell(hint.branch)
    assert cell["result"]["status"] == "ok", cell["output"]
    assert "OBJECTIVE_VALUE: 42" in cell["output"]
    # The prefix keeps the parent's record of the timed-out cell.
    assert hint.branch.steps[0]["result"]["status"] == "timeout"


def test_the_batch_loop_never_replays_a_timed_out_cell(problem, reasoner, taxonomy):
    flaw = {"flawless": False, "step": 2, "flaw_type": "broken_code", "hint": HINT,
            "rationale": "print the objective"}  # fmt: skip
    intervener = ModelEndpoint.objects.create(
        name="scripted-intervener", backend="scripted", role="intervener",
        model=str(reasoner.model), extra={"chat_replies": [json.dumps(flaw)] * 4},
    )  # fmt: skip
    batch = batch_create(name="replay", problems=[problem], reasoner=reasoner,
                         intervener=intervener, config={"max_interventions": 1},
                         enqueue=False)  # fmt: skip
    for _ in range(10):
        if not batch_advance(batch_id=batch.pk):
            break
    after = BatchRound.objects.get(item__batch=batch).after
    cell = _new_cell(after)
    assert cell["result"]["status"] == "ok", cell["output"]
    assert "OBJECTIVE_VALUE: 42" in cell["output"]
