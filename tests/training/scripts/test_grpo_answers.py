"""One decision of what the model answered, in GRPO: the reward takes the engine's decision
(the rollout's ``final_answer``) and never re-reads TRL's decoded completion, which has no
``<think>`` (the forced prefix went into the prompt). A rollout with no stated answer scores 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.engine import RolloutConfig, extract_final_answer, rollout_many
from curation.engine.answers import last_boxed
from curation.engine.backends.scripted import ScriptedBackend
from curation.engine.branching import forced_prefix_length
from tests.training.scripts.conftest import write_problems
from training.scripts import grpo
from training.scripts.rewards import make_all_failed_penalty, make_correctness_reward
from training.scripts.runtime import read_events, run_training

CONFIG = Path(__file__).resolve().parents[3] / "training" / "scripts" / "configs" / "grpo_tiny.yaml"

# The case: a guess boxed inside the thought, code run, the thought goes on, no answer.
GUESS_IN_THOUGHT = (
    "So a guess: \\boxed{12}.\n```python\nprint(12)\n```\n"
    "Still checking whether 12 is right.<|im_end|>"
)
STATED = (
    "So a guess: \\boxed{12}.\n```python\nprint(12)\n```\nIt is 12.\n</think>\n"
    "\\boxed{12}<|im_end|>"
)


def _grpo_batch(tokenizer, scripts):
    """What TRL hands the reward functions for these model turns: the engine rollout's columns
    (``training.grpo.rollout_columns``) and the completions as TRL decodes them."""
    backend = ScriptedBackend(tokenizer, scripts)
    config = RolloutConfig(think_prefix="<think>\n", max_new_tokens=400, code_timeout_s=10.0)
    rollouts = rollout_many(backend, ["Maximize 3x with 0 <= x <= 4."] * len(scripts), config)
    forced = max(forced_prefix_length(r.completion) for r in rollouts)
    out = grpo.rollout_columns(rollouts, forced=forced, eos=backend.eos_token_ids[0])
    completions = [tokenizer.decode(ids, skip_special_tokens=True) for ids in out["completion_ids"]]
    return rollouts, out, completions


def test_the_grpo_reward_of_an_unstated_answer_is_0_and_of_a_stated_one_1(tiny_tokenizer, sandbox):
    rollouts, out, completions = _grpo_batch(tiny_tokenizer, [GUESS_IN_THOUGHT, STATED])
    assert all(r.results[0]["status"] == "ok" for r in rollouts)  # the code really ran
    # TRL's completion text: no <think>, the guess and the output block inside it.
    assert "<think>" not in completions[0] and "\\boxed{12}" in completions[0]
    assert "```output" in completions[0]
    # Read whole (what the reward did before) the guess would count as the answer...
    assert last_boxed(completions[0]) == "12"
    # ...but the engine, which knows the thought never closed, says nothing was stated, and
    # so does the same function on the text alone (the final step is after the last output).
    assert out["final_answer"][0] is None
    assert extract_final_answer(completions[0]) is None
    assert out["final_answer"][1]["value"] == 12.0

    correctness = make_correctness_reward("relative", 1e-6)
    columns = {k: out[k] for k in ("final_answer", "code_calls", "failed_code_calls",
                                   "finish_reason")}  # fmt: skip
    got = correctness(completions, answer=[12.0, 12.0], answer_status=["value"] * 2, **columns)
    assert got == [0.0, 1.0]


def test_an_unstated_answer_is_not_credited_from_the_sandbox_unless_asked(tiny_tokenizer, sandbox):
    off = RolloutConfig(think_prefix="<think>\n", max_new_tokens=400)
    on = RolloutConfig(think_prefix="<think>\n", max_new_tokens=400, credit_sandbox_answer=True)
    program = (
        "import pyomo.environ as pyo\nm = pyo.ConcreteModel()\nm.x = pyo.Var(bounds=(0, 4))\n"
        "m.o = pyo.Objective(expr=3 * m.x, sense=pyo.maximize)\n"
        "pyo.SolverFactory('appsi_highs').solve(m)\nprint(pyo.value(m.o))\n"
    )
    script = f"```python\n{program}```\nDone thinking?<|im_end|>"
    r_off = rollout_many(ScriptedBackend(tiny_tokenizer, [script]), ["P."], off)[0]
    r_on = rollout_many(ScriptedBackend(tiny_tokenizer, [script]), ["P."], on)[0]
    assert r_off.sandbox_objective == 12.0 and r_off.final_answer is None
    assert (r_on.final_answer.value, r_on.final_answer.source) == (12.0, "sandbox")


def test_a_grpo_step_with_sandbox_crediting_off_rewards_no_unstated_answer(
    tmp_path, tiny_model_path, sandbox
):
    """End to end: real TRL steps on the tiny random model, whose rollouts run the forced code
    block (objective 12 = the reference of p1) but never state an answer: with crediting off
    (the default) every correctness reward is 0, though the sandbox found the optimum."""
    from tests.training.scripts.conftest import CODE_PREFIX

    problems = write_problems(tmp_path / "problems.jsonl", [
        {"id": "p1", "benchmark": "Toy", "question": "Maximize 3x with 0 <= x <= 4.",
         "answer": 12.0, "answer_status": "value"},
    ])  # fmt: skip
    rollouts_file = tmp_path / "rollouts.jsonl"
    args = grpo.parse_args([
        "--config", str(CONFIG), "--model_name_or_path", str(tiny_model_path),
        "--train_files", str(problems), "--output_dir", str(tmp_path / "run"),
        "--think_prefix", CODE_PREFIX, "--max_steps", "1", "--per_device_train_batch_size", "2",
        "--rollouts_file", str(rollouts_file),
    ])  # fmt: skip
    assert args[0].credit_sandbox_answer is False
    metrics_file = tmp_path / "metrics.jsonl"
    assert run_training("grpo", grpo.build_trainer, args, metrics_file=str(metrics_file)) == 0

    import json

    records = [json.loads(line) for line in rollouts_file.read_text().splitlines()]
    assert len(records) == 2 and all(r["code_calls"] >= 1 for r in records)
    unstated = [r for r in records if r["final_answer"] is None]
    assert unstated, "the random model stated an answer: the test proves nothing"
    events = read_events(metrics_file)
    log = next(e["logs"] for e in events if e["event"] == "log")
    stated_right = sum(
        1 for r in records if r["final_answer"] and r["final_answer"].get("value") == 12.0
    )
    assert log["rewards/correctness/mean"] == pytest.approx(stated_right / len(records))
    assert events[-1]["event"] == "done" and events[-1]["status"] == "completed"


def test_the_all_failed_penalty_reads_the_rollouts_counts_beside_unstated_answers():
    penalty = make_all_failed_penalty(0.1)
    assert penalty(["x", "y"], code_calls=[2, 2], failed_code_calls=[2, 1],
                   finish_reason=["eos", "eos"]) == [-0.1, 0.0]  # fmt: skip


def test_a_grpo_run_does_not_start_when_the_sandbox_cannot_infrastructure(
    tmp_path, tiny_model_path, sandbox_without_bubblewrap
):
    from curation.engine import SandboxUnavailableError

    problems = write_problems(tmp_path / "problems.jsonl", [
        {"id": "p1", "benchmark": "Toy", "question": "Maximize 3x with 0 <= x <= 4.",
         "answer": 12.0, "answer_status": "value"},
    ])  # fmt: skip
    args = grpo.parse_args([
        "--config", str(CONFIG), "--model_name_or_path", str(tiny_model_path),
        "--train_files", str(problems), "--output_dir", str(tmp_path / "run"),
    ])  # fmt: skip
    with pytest.raises(SandboxUnavailableError, match="bwrap not installed"):
        grpo.build_trainer(*args)


def test_a_rollout_the_sandbox_failed_is_skipped_by_every_reward_infrastructure(
    tiny_tokenizer, sandbox_without_bubblewrap
):
    """Mid-run, the pool is gone: the rollout stops as "infrastructure", its env_mask is all
    0 and every reward returns None (TRL leaves it out of the group's baseline), where the
    all-failed penalty would otherwise have punished the policy."""
    from training.scripts.rewards import build_reward_funcs

    rollouts, out, completions = _grpo_batch(tiny_tokenizer, [GUESS_IN_THOUGHT])
    assert out["finish_reason"] == ["infrastructure"] and rollouts[0].code_calls == 0
    assert set(out["env_mask"][0]) == {0}
    assert "```output" not in completions[0]
    columns = {k: out[k] for k in ("final_answer", "code_calls", "failed_code_calls",
                                   "finish_reason")}  # fmt: skip
    names = ["correctness", "all_failed_penalty", "code_call_penalty", "calibration"]
    for reward in build_reward_funcs(names):
        assert reward(completions, answer=[12.0], answer_status=["value"], **columns) == [None]


def test_a_grpo_step_whose_sandbox_dies_mid_run_trains_on_nothing_infrastructure(
    tmp_path, tiny_model_path, sandbox
):
    """Real TRL: the sandbox passes the start check, then every run is lost. The step
    completes; every rollout is unscorable (reward None, env_mask 0), none is punished."""
    import json

    from curation.engine import run_in_sandbox
    from tests.training.scripts.conftest import CODE_PREFIX

    calls = []

    def sandbox_that_dies_after_the_check(code, cells, timeout_s):
        calls.append(code)
        if len(calls) > 1:
            return {"status": "harness_error", "detail": "lost contact with the zygote"}
        return run_in_sandbox(code, cells, timeout_s)

    problems = write_problems(tmp_path / "problems.jsonl", [
        {"id": "p1", "benchmark": "Toy", "question": "Maximize 3x with 0 <= x <= 4.",
         "answer": 12.0, "answer_status": "value"},
    ])  # fmt: skip
    rollouts_file = tmp_path / "rollouts.jsonl"
    args = grpo.parse_args([
        "--config", str(CONFIG), "--model_name_or_path", str(tiny_model_path),
        "--train_files", str(problems), "--output_dir", str(tmp_path / "run"),
        "--think_prefix", CODE_PREFIX, "--max_steps", "1", "--per_device_train_batch_size", "2",
        "--rollouts_file", str(rollouts_file), "--credit_sandbox_answer", "true",
    ])  # fmt: skip

    def build(*a, **kw):
        return grpo.build_trainer(*a, **kw, run_code=sandbox_that_dies_after_the_check)

    metrics_file = tmp_path / "metrics.jsonl"
    assert run_training("grpo", build, args, metrics_file=str(metrics_file)) == 0
    records = [json.loads(line) for line in rollouts_file.read_text().splitlines()]
    assert [r["finish_reason"] for r in records] == ["infrastructure"] * 2
    assert all(set(r["env_mask"]) == {0} for r in records)
    events = read_events(metrics_file)
    assert events[-1]["event"] == "done" and events[-1]["status"] == "completed"
