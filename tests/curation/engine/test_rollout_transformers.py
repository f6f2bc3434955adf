"""The real loop: the tiny transformers model, the real solver sandbox.

A random model does not write code by itself, so code enters the way a real trajectory gets
it: through the assistant turn's ``think_prefix`` or a hint that holds a whole code block.
"""

from __future__ import annotations

import importlib

from curation.engine import (
    GenerationRequest,
    RolloutConfig,
    Tag,
    continue_rollout,
    rollout,
    rollout_many,
)
from curation.engine.format import CODE_LIMIT_NOTICE, FenceState

LP = """import pyomo.environ as pyo
m = pyo.ConcreteModel()
m.x = pyo.Var(bounds=(0, 4))
m.obj = pyo.Objective(expr=3 * m.x, sense=pyo.maximize)
pyo.SolverFactory('appsi_highs').solve(m)
print(f"OBJECTIVE_VALUE: {pyo.value(m.obj)}")
"""
PREFIX = f"<think>\nLet me solve it.\n```python\n{LP}```\n"


def _config(**kw):
    return RolloutConfig(
        **{"max_new_tokens": 170, "think_prefix": PREFIX, "temperature": 0.0, "seed": 0, **kw}
    )


class Recording:
    """Wraps a backend and keeps every request it was sent."""

    def __init__(self, backend):
        self._b = backend
        self.requests: list[GenerationRequest] = []

    def __getattr__(self, name):
        return getattr(self._b, name)

    def generate(self, requests, **kw):
        self.requests.extend(requests)
        return self._b.generate(requests, **kw)


def test_it_runs_the_code_block_in_the_sandbox_and_tags_its_output(tiny_backend, sandbox):
    r = rollout(tiny_backend, "Maximize 3x with 0 <= x <= 4.", _config())
    assert r.code_calls == 1 and r.failed_code_calls == 0
    assert r.results[0]["status"] == "ok" and r.results[0]["objective"] == 12.0
    step = r.steps[0]
    assert step.code == LP and step.output == "OBJECTIVE_VALUE: 12.0"
    out = r.completion[step.output_token_start : step.token_end]
    assert set(out.tags) == {Tag.INTERPRETER}
    assert tiny_backend.decode(out.ids) == "```output\nOBJECTIVE_VALUE: 12.0\n```\n"
    # The forced prefix (here a whole code block) is the prompt side's: tagged PROMPT.
    assert set(r.completion.tags[: step.output_token_start]) == {Tag.PROMPT}
    # No \boxed{} from a random model: no answer, though the sandbox's solve is recorded...
    assert r.final_answer is None and r.sandbox_objective == 12.0
    # ...and credited only where a setting says so.
    credited = rollout(tiny_backend, "Maximize 3x.", _config(credit_sandbox_answer=True))
    assert (credited.final_answer.value, credited.final_answer.source) == (12.0, "sandbox")


def test_it_counts_add_up_and_the_budget_is_enforced(tiny_backend, sandbox):
    r = rollout(tiny_backend, "Maximize 3x.", _config(max_new_tokens=180))
    c = r.counts
    assert c["forced"] + c["model"] + c["interpreter"] + c["hint"] == len(r.completion) == 180
    assert c["prompt"] == len(r.prompt_ids)
    assert r.finish_reason == "budget"
    assert r.text == tiny_backend.decode(r.completion.ids)
    # A budget that ends inside the interpreter output cuts it there.
    cut = r.steps[0].output_token_start + 3
    tight = rollout(tiny_backend, "Maximize 3x.", _config(max_new_tokens=cut))
    assert len(tight.completion) == cut and tight.finish_reason == "budget"
    assert tight.completion.ids == r.completion.ids[:cut]


def test_it_appends_the_notice_at_the_code_call_cap(tiny_backend, sandbox):
    r = rollout(tiny_backend, "Maximize 3x.", _config(max_code_calls=1, max_new_tokens=300))
    assert r.steps[0].output.endswith(CODE_LIMIT_NOTICE.strip())
    assert CODE_LIMIT_NOTICE in r.text


def test_it_batches_live_sequences_into_one_generate_call(tiny_backend, sandbox):
    rec = Recording(tiny_backend)
    rs = rollout_many(rec, ["Maximize 3x.", "Maximize 3x, once more, longer."], _config())
    assert len(rec.requests) == 2  # one round, two sequences
    assert all(r.code_calls == 1 for r in rs)
    assert rs[0].prompt_ids != rs[1].prompt_ids


def test_it_continues_from_the_hint_without_touching_the_prefix(tiny_backend, sandbox):
    parent = rollout(tiny_backend, "Maximize 3x.", _config())
    cut = parent.steps[1].token_start  # before the step after the first output
    prefix = parent.completion[:cut]
    hint = (
        "Wait, let me double-check with x integer.\n```python\nprint('OBJECTIVE_VALUE: 12')\n```\n"
    )
    rec = Recording(tiny_backend)
    child = continue_rollout(
        rec, prompt_ids=parent.prompt_ids, prefix=prefix, prior_cells=[LP], hint_text=hint,
        config=_config(max_new_tokens=260),
    )  # fmt: skip
    assert child.prompt_ids == parent.prompt_ids
    assert child.completion[:cut] == prefix  # ids and tags, token for token
    hint_ids = tiny_backend.encode(hint)
    assert child.completion.ids[cut : cut + len(hint_ids)] == hint_ids
    assert set(child.completion.tags[cut : cut + len(hint_ids)]) == {Tag.HINT}
    # The hint's code block ran (after the prefix's cell) before any generation.
    assert child.code_calls == 2 and child.results[-1]["stdout"] == "OBJECTIVE_VALUE: 12\n"
    assert child.steps[1].has_hint and child.steps[1].code == "print('OBJECTIVE_VALUE: 12')\n"
    # Only the suffix was generated: each request is prompt + the stored prefix + the rest.
    assert rec.requests
    for req in rec.requests:
        assert req.prompt_ids[: len(parent.prompt_ids) + cut] == parent.prompt_ids + prefix.ids
    generated = child.completion[cut + len(hint_ids) :].count(Tag.MODEL)
    assert generated == child.counts["model"] - prefix.count(Tag.MODEL)
    assert child.counts["hint"] == len(hint_ids)


def test_it_stops_a_batch_row_at_the_closing_fence_eos_or_its_budget(tiny_backend):
    """Drive the real transformers generate loop with a forced next token per row."""
    import torch

    tok = tiny_backend
    scripts = [
        tok.encode("print(1)\n```\nafter the fence"),
        [*tok.encode("no code here"), tok.eos_token_ids[0], *tok.encode("junk")],
        tok.encode("a long text that never ends and goes on"),
    ]
    step = {"n": 0}

    def force(module, inputs, output):
        if inputs[0].shape[1] > 1:  # prefill of a new generate call
            step["n"] = 0
        logits = output.clone()
        for row, ids in enumerate(scripts):
            if step["n"] < len(ids):
                logits[row, -1, :] = -1e4
                logits[row, -1, ids[step["n"]]] = 1e4
        step["n"] += 1
        return logits

    handle = tok.model.lm_head.register_forward_hook(force)
    try:
        prompt = tok.encode("Solve.\n```python\n")
        results = tok.generate(
            [
                GenerationRequest(prompt, 40, fence=FenceState(open="python")),
                GenerationRequest(tok.encode("Hi"), 40),
                GenerationRequest(tok.encode("A much longer prompt, left padded"), 5),
            ]
        )
    finally:
        handle.remove()
    assert [r.finish_reason for r in results] == ["code", "eos", "length"]
    assert results[0].text == "print(1)\n```"
    assert results[1].token_ids == scripts[1][: len(tok.encode("no code here")) + 1]
    assert results[2].token_ids == scripts[2][:5]
    assert torch.is_grad_enabled()


def test_the_text_shows_while_the_model_decodes_and_streaming_keeps_the_tokens(
    tiny_backend, monkeypatch
):
    loop = importlib.import_module("curation.engine.rollout")  # the package's rollout: a function
    monkeypatch.setattr(loop, "STREAM_EVERY_TOKENS", 5)
    config = _config(think_prefix="<think>\n", max_new_tokens=60)
    quiet = rollout(tiny_backend, "Maximize 3x with 0 <= x <= 4.", config)
    seen = []
    streamed = rollout(
        tiny_backend, "Maximize 3x with 0 <= x <= 4.", config,
        on_update=lambda progress: seen.append(progress[0]),
    )  # fmt: skip
    assert streamed.completion.ids == quiet.completion.ids  # a preview, never the tokens
    assert streamed.text == quiet.text
    forced = streamed.completion.count(Tag.PROMPT)
    # One generate call (no code): without streaming the text would show only before and after.
    midway = [p for p in seen if forced < p.tokens < len(streamed.completion) and not p.finished]
    assert len(midway) >= 5
    assert all(quiet.text.startswith(p.text) for p in midway)
    assert [p.tokens for p in midway] == sorted(p.tokens for p in midway)
