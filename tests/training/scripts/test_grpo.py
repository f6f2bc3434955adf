"""GRPO with the engine's rollout on the tiny model: code runs in the real sandbox inside the
rollout, its output is masked out of the loss, rewards and metrics flow. Real TRL steps."""

from __future__ import annotations

from pathlib import Path

import pytest

import curation.engine
from curation.engine import Tag
from tests.training.scripts.conftest import CODE_PREFIX, LP_OUTPUT_BLOCK, write_problems
from training.scripts import grpo
from training.scripts.runtime import read_events, run_training

CONFIG = Path(__file__).resolve().parents[3] / "training" / "scripts" / "configs" / "grpo_tiny.yaml"
PROBLEMS = [
    {"id": "p1", "benchmark": "Toy", "question": "Maximize 3x with 0 <= x <= 4.", "answer": 12.0,
     "answer_status": "value"},
    {"id": "p2", "benchmark": "Toy", "question": "Maximize 3x with 0 <= x <= 5.", "answer": 15.0,
     "answer_status": "value"},
]  # fmt: skip


def test_it_runs_grpo_steps_whose_rollouts_execute_code(
    tmp_path, tiny_model_path, tiny_tokenizer, sandbox, monkeypatch
):
    problems = write_problems(tmp_path / "problems.jsonl", PROBLEMS)
    args = grpo.parse_args([
        "--config", str(CONFIG), "--model_name_or_path", str(tiny_model_path),
        "--train_files", str(problems), "--output_dir", str(tmp_path / "run"),
        "--think_prefix", CODE_PREFIX, "--credit_sandbox_answer", "true",
    ])  # fmt: skip

    rollouts, returned, prompts_seen = [], [], []
    real_rollout_many = curation.engine.rollout_many

    def recording_rollout_many(*a, **kw):
        got = real_rollout_many(*a, **kw)
        rollouts.append(got)
        return got

    monkeypatch.setattr(curation.engine, "rollout_many", recording_rollout_many)

    def build(*a, **kw):
        trainer = grpo.build_trainer(*a, **kw)
        inner = trainer.rollout_func

        def rollout_func(prompts, t):
            prompts_seen.append(list(prompts))
            out = inner(prompts, t)
            returned.append(out)
            return out

        trainer.rollout_func = rollout_func
        return trainer

    metrics_file = tmp_path / "metrics.jsonl"
    assert run_training("grpo", build, args, metrics_file=str(metrics_file)) == 0

    # Two steps, each: 2 problems x 2 generations, the prompts already repeated by TRL.
    assert len(returned) == 2
    for prompts in prompts_seen:
        assert len(prompts) == 4 and prompts[0] == prompts[1] and prompts[2] == prompts[3]

    decode = lambda ids: tiny_tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    for out, batch in zip(returned, rollouts, strict=True):
        assert out["logprobs"] is None
        assert set(out) >= {"prompt_ids", "completion_ids", "env_mask", "final_answer",
                            "code_calls", "failed_code_calls", "finish_reason"}  # fmt: skip
        for i, r in enumerate(batch):
            ids, mask = out["completion_ids"][i], out["env_mask"][i]
            assert len(ids) == len(mask) > 0
            # The forced think prefix (holding the code) moved into the prompt...
            assert decode(out["prompt_ids"][i]).endswith(CODE_PREFIX)
            # ...and env_mask is 0 exactly on the interpreter's tokens.
            k = len(r.completion) - len(ids)
            tags = r.completion.tags[k:]
            assert mask == [0 if t == Tag.INTERPRETER else 1 for t in tags]
            masked = decode([t for t, m in zip(ids, mask, strict=True) if m == 0])
            assert masked.startswith(LP_OUTPUT_BLOCK)
            assert "```output" not in decode([t for t, m in zip(ids, mask, strict=True) if m])
            assert out["code_calls"][i] >= 1 and r.results[0]["status"] == "ok"
            assert r.results[0]["objective"] == 12.0
            assert out["final_answer"][i]["value"] == 12.0  # the sandbox's solve

    events = read_events(metrics_file)
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2]
    for e in steps:
        # p1 (answer 12) is right, p2 (answer 15) wrong; no penalty applies.
        assert e["reward"] == pytest.approx(0.5)
        assert e["code_calls"] >= 1 and e["interpreter_tokens"] > 0
        assert e["completion_length"] > 0 and "loss" in e
    log = next(e["logs"] for e in events if e["event"] == "log")
    assert log["rewards/correctness/mean"] == pytest.approx(0.5)
    assert log["rewards/all_failed_penalty/mean"] == 0.0
    assert events[-1]["event"] == "done" and events[-1]["status"] == "completed"
    assert (tmp_path / "run" / "calm_config.yaml").exists()
