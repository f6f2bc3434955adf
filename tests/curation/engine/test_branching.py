"""Where a branch leaves its parent (``branch_point``), the think-prefix rule, and the repetition
stop. The step-0 hint runs the tiny real model; exact cases use the SCRIPTED STAND-IN for a
language model, named as such."""

from __future__ import annotations

import pytest

from curation.engine import (
    REPETITION,
    RolloutConfig,
    Step,
    Tag,
    TaggedTokens,
    branch_point,
    branch_rollout,
    rollout,
    think_prefix_for,
)
from curation.engine.backends.scripted import ScriptedBackend
from curation.engine.rollout import normalise_code

OPENS_THINK = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)


class Sandbox:
    """Records what it is asked to run; answers each code with a given status."""

    def __init__(self, statuses=None, default="ok"):
        self.calls, self.statuses, self.default = [], dict(statuses or {}), default

    def __call__(self, code, prior_cells, timeout_s):
        self.calls.append((code.strip(), [c.strip() for c in prior_cells]))
        status = self.statuses.get(code.strip(), self.default)
        return {"status": status, "stdout": "OBJECTIVE_VALUE: 1\n" if status == "ok" else "",
                "stderr": "" if status == "ok" else "ValueError: not enough values to unpack",
                "solves": []}  # fmt: skip


class WithTemplate:
    """A backend whose chat template is replaced (the tokenizer is shared between tests)."""

    def __init__(self, backend, template):
        self._b, self._template = backend, template

    def __getattr__(self, name):
        return getattr(self._b, name)

    @property
    def tokenizer(self):
        outer = self

        class Tok:
            def __getattr__(self, name):
                return getattr(outer._b.tokenizer, name)

            def apply_chat_template(self, messages, **kw):
                return outer._b.tokenizer.apply_chat_template(
                    messages, chat_template=outer._template, **kw
                )

        return Tok()

    def chat_prompt_ids(self, messages, **kw):
        text = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        return self._b.encode(text)


# --- the think prefix ---------------------------------------------------------------------------


def test_it_forces_the_think_tag_when_the_template_does_not_open_it(tiny_tokenizer):
    backend = ScriptedBackend(tiny_tokenizer, ["reasoning</think>\\boxed{1}"])
    assert think_prefix_for(backend) == "<think>\n"
    r = rollout(backend, "P.", RolloutConfig(max_new_tokens=100), run_code=Sandbox())
    assert r.text.startswith("<think>\nreasoning")
    assert backend.decode(r.prompt_ids).count("<think>") == 0


def test_it_writes_the_tag_once_when_the_template_opens_it(tiny_tokenizer):
    backend = WithTemplate(ScriptedBackend(tiny_tokenizer, ["reasoning</think>\\boxed{1}"]),
                           OPENS_THINK)  # fmt: skip
    assert think_prefix_for(backend) == ""
    assert think_prefix_for(backend, "<think>\n```python\n") == "```python\n"
    assert think_prefix_for(backend, "Let me see.") == "Let me see."
    r = rollout(backend, "P.", RolloutConfig(max_new_tokens=100), run_code=Sandbox())
    whole = backend.decode(r.prompt_ids) + r.text
    assert whole.count("<think>") == 1 and r.text.startswith("reasoning")
    assert r.final_answer.value == 1


# --- the branch point ---------------------------------------------------------------------------


def test_a_hint_at_step_zero_keeps_the_think_prefix_and_the_real_model_continues(tiny_backend):
    config = RolloutConfig(max_new_tokens=24, temperature=0.0, seed=0)
    parent = rollout(tiny_backend, "Maximize 3x with 0 <= x <= 4.", config, run_code=Sandbox())
    forced = tiny_backend.encode("<think>\n")
    assert parent.completion.ids[: len(forced)] == forced
    hint = "Pyomo variables must be attached to a model: model.x = Var(...)."
    branch, point = branch_rollout(
        tiny_backend, prompt_ids=parent.prompt_ids, completion=parent.completion,
        steps=parent.steps, step_index=0, hint_text=hint,
        config=RolloutConfig(max_new_tokens=60, temperature=0.0, seed=0), run_code=Sandbox(),
    )  # fmt: skip
    assert point.offset == point.forced == len(forced)
    assert branch.text.startswith("<think>\n" + hint)
    tags = branch.completion.tags
    assert tags[: len(forced)] == [Tag.PROMPT] * len(forced)
    assert Tag.HINT in tags and tags.count(Tag.MODEL) > 0  # new tokens after the hint
    assert tags.index(Tag.MODEL) > tags.index(Tag.HINT)


def test_a_legacy_trajectory_with_the_prefix_as_model_tokens_keeps_it_too(tiny_tokenizer):
    decode = ScriptedBackend(tiny_tokenizer).decode
    ids = tiny_tokenizer.encode("<think>\nsome reasoning", add_special_tokens=False)
    completion = TaggedTokens(ids, Tag.MODEL)
    steps = [Step(0, "<think>\nsome reasoning", None, None, None, False, 0, None, None, len(ids))]
    point = branch_point(completion, steps, 0, decode=decode)
    assert decode(ids[: point.offset]) == "<think>\n"


def _steps(statuses):
    steps, start = [], 0
    for i, status in enumerate(statuses):
        steps.append(Step(i, f"step {i}", f"cell_{i}()", "out", {"status": status}, False,
                          start, start + 1, start + 2, start + 3))  # fmt: skip
        start += 3
    steps.append(Step(len(statuses), "final", None, None, None, False, start, None, None,
                      start + 1))  # fmt: skip
    return steps, TaggedTokens([1] * (start + 1), Tag.MODEL)


def test_a_branch_never_replays_a_cell_that_timed_out_or_hit_a_limit():
    steps, completion = _steps(["ok", "timeout", "error", "memory_limit", "ok"])
    point = branch_point(completion, steps, 5)
    assert point.prior_cells == ("cell_0()", "cell_2()", "cell_4()")
    # The results stay aligned with the prefix's output blocks, one per code step.
    assert [r["status"] for r in point.prior_results] == [
        "ok", "timeout", "error", "memory_limit", "ok"]  # fmt: skip
    assert branch_point(completion, steps, 2).prior_cells == ("cell_0()",)
    with pytest.raises(IndexError):
        branch_point(completion, steps, 9)


def test_branch_rollout_replays_what_the_original_rollout_replayed(tiny_tokenizer):
    slow = "while True: pass"
    script = f"A.\n```python\n{slow}\n```\nB.\n```python\nx = 1\n```\nC.</think>\\boxed{{1}}"
    sandbox = Sandbox({slow: "timeout"})
    parent = rollout(ScriptedBackend(tiny_tokenizer, [script]), "P.",
                     RolloutConfig(max_new_tokens=400), run_code=sandbox)  # fmt: skip
    assert sandbox.calls[1] == ("x = 1", [])  # the rollout itself did not replay the timeout
    sandbox.calls.clear()
    backend = ScriptedBackend(tiny_tokenizer, ["```python\ny = 2\n```\ndone</think>\\boxed{2}"])
    branch, point = branch_rollout(
        backend, prompt_ids=parent.prompt_ids, completion=parent.completion,
        steps=parent.steps, step_index=2, hint_text="Let me check.\n", run_code=sandbox,
        config=RolloutConfig(max_new_tokens=400),
    )  # fmt: skip
    assert [c.strip() for c in point.prior_cells] == ["x = 1"]
    assert sandbox.calls == [("y = 2", ["x = 1"])]
    assert [s.result["status"] for s in branch.steps if s.result] == ["timeout", "ok", "ok"]


# --- repetition ---------------------------------------------------------------------------------


def test_the_repetition_stop_fires_on_the_same_failing_block(tiny_tokenizer):
    bad = "x, y = Var(within=NonNegativeIntegers)"
    turn = f"Try.\n```python\n{bad}\n```\n"
    spaced = "Again.\n```python\nx, y  =  Var(within=NonNegativeIntegers)  # again\n```\n"
    backend = ScriptedBackend(tiny_tokenizer, [turn + spaced + turn + turn + turn])
    r = rollout(backend, "P.", RolloutConfig(max_new_tokens=2000),
                run_code=Sandbox(default="error"))  # fmt: skip
    assert r.finish_reason == REPETITION and r.code_calls == 3
    assert r.final_answer is None


def test_a_fixed_block_resets_the_repetition_count(tiny_tokenizer):
    bad, good = "x, y = Var()", "model.x = Var()"
    turns = [f"```python\n{c}\n```\n" for c in (bad, bad, good, bad, bad)] + ["</think>\\boxed{3}"]
    script = "".join(turns)
    r = rollout(ScriptedBackend(tiny_tokenizer, [script]), "P.", RolloutConfig(max_new_tokens=2000),
                run_code=Sandbox({bad: "error"}))  # fmt: skip
    assert r.finish_reason == "eos" and r.code_calls == 5 and r.final_answer.value == 3


def test_code_is_normalised_without_comments_and_spacing():
    assert normalise_code("a  =  1  # note\n\nb=2\n") == normalise_code("a = 1\nb = 2")
    assert normalise_code("s = '# not a comment'") != normalise_code("s = ''")
