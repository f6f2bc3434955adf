from __future__ import annotations

import importlib

import pytest


@pytest.fixture
def taxonomy(db):
    """The seeded flaw taxonomy (transactional tests flush the migration's rows)."""
    from django.apps import apps

    from curation.models import FlawType

    seed = importlib.import_module("curation.migrations.0004_seed_taxonomy")
    seed.seed(apps, None)
    return list(FlawType.objects.select_related("category"))


def step(index, reasoning, code=None, output=None, status="ok", objective=None, has_hint=False):
    result = (
        None
        if code is None
        else {
            "status": status,
            "objective": objective,
            "solver_status": "optimal",
            "stdout": output,
        }
    )
    return {
        "index": index,
        "reasoning": reasoning,
        "code": code,
        "output": output,
        "result": result,
        "has_hint": has_hint,
        "token_start": index * 10,
        "code_token_start": None if code is None else index * 10 + 4,
        "output_token_start": None if code is None else index * 10 + 7,
        "token_end": index * 10 + 10,
        "char_start": 0,
        "extra": {},
    }


STEPS = [
    step(0, "Let me compute by hand: 4*30 + 3*40 = 240.", None),
    step(1, "Now in code.", "print(4*30 + 3*40)", "240\n", objective=None),
    step(2, "Solve the LP.", "m = 1\nprint('OBJECTIVE_VALUE: 4100')", "OBJECTIVE_VALUE: 4100\n",
         objective=4100.0),
    step(3, "The answer is \\boxed{4100}.", None),
]  # fmt: skip
STEPS[0]["code"] = "x = 4 * 30 + 3 * 40\nprint(x)"
STEPS[0]["output"] = "240\n"
STEPS[0]["result"] = {"status": "ok", "objective": None, "stdout": "240\n"}


@pytest.fixture
def problem(db):
    from curation.models import Benchmark, Problem

    bench = Benchmark.objects.get_or_create(name="CALM Demo")[0]
    return Problem.objects.create(
        benchmark=bench,
        external_id="demo-01-furniture",
        question="Tables and chairs; maximize profit.",
        answer=4100,
        content_hash="x",
    )


@pytest.fixture
def make_trajectory(problem):
    from curation.models import Trajectory

    def make(steps=None, **fields):
        defaults = {
            "problem": problem,
            "prompt_tokens": b"",
            "completion_tokens": b"",
            "text": "",
            "steps": STEPS if steps is None else steps,
            "finish_reason": "eos",
            "final_answer": "4100",
            "final_value": 4100.0,
            "answer_source": "boxed",
            "is_correct": True,
            "n_model_tokens": 100,
            "n_interpreter_tokens": 20,
            "n_hint_tokens": 0,
            "n_code_calls": 3,
        }
        return Trajectory.objects.create(**{**defaults, **fields})

    return make
