"""Exact orchestration with the SCRIPTED STAND-IN for a language model (no model runs here)."""

from __future__ import annotations

import json

import pytest

from curation.engine import (
    DEFAULT_TAXONOMY,
    HINT_TEMPLATES,
    BackendTimeoutError,
    RolloutConfig,
    Tag,
    continue_rollout,
    diagnose,
    rollout,
)
from curation.engine.backends.scripted import ScriptedBackend
from curation.engine.format import CODE_LIMIT_NOTICE, NOT_RUN_OUTPUT

# A known trajectory with a known flaw: the trips are continuous (wrong variable domain).
FLAWED = (
    "Let x be the boat trips and y the canoe trips.\n"
    "```python\nprint('OBJECTIVE_VALUE: 12.5')\n```\n"
    "So the optimum is 12.5 trips.\n</think>\n\\boxed{12.5}<|im_end|>"
)


class FakeSandbox:
    """Records the cells it is asked to run and answers with a fixed objective."""

    def __init__(self, objective=12.5, status="ok"):
        self.calls = []
        self.objective, self.status = objective, status

    def __call__(self, code, prior_cells, timeout_s):
        self.calls.append((code, list(prior_cells), timeout_s))
        return {
            "status": self.status,
            "stdout": f"OBJECTIVE_VALUE: {self.objective}\n" if self.status == "ok" else "",
            "stderr": "" if self.status == "ok" else "Traceback ...\nNameError: m",
            "solves": [{"termination": "optimal", "objective": self.objective}],
        }


def _config(**kw):
    return RolloutConfig(**{"max_new_tokens": 400, "temperature": 0.0, **kw})


def _verdict(**kw):
    base = {
        "flawless": False,
        "step": 0,
        "flaw_type": "variable_domain",
        "hint": "Wait, the number of trips must be an integer.",
        "rationale": "LP relaxation",
    }
    return json.dumps({**base, **kw})  # fmt: skip


def test_it_replays_a_scripted_trajectory_through_the_loop(tiny_tokenizer):
    backend = ScriptedBackend(tiny_tokenizer, [FLAWED])
    sandbox = FakeSandbox()
    r = rollout(backend, "Ducks.", _config(), run_code=sandbox)
    assert len(backend.calls) == 2  # stopped at the closing fence, resumed after the output
    assert sandbox.calls == [("print('OBJECTIVE_VALUE: 12.5')\n", [], 30.0)]
    assert r.finish_reason == "eos"
    assert [s.code for s in r.steps] == ["print('OBJECTIVE_VALUE: 12.5')\n", None]
    assert r.steps[0].output == "OBJECTIVE_VALUE: 12.5"
    assert r.steps[0].reasoning == "<think>\nLet x be the boat trips and y the canoe trips.\n"
    assert (r.final_answer.value, r.final_answer.source) == (12.5, "boxed")
    assert r.counts["code_calls"] == 1 and r.counts["failed_code_calls"] == 0
    again = type(r).from_dict(json.loads(json.dumps(r.to_dict())))
    assert again.completion == r.completion and again.steps == r.steps


def test_it_finds_the_known_flaw_and_the_hint_fixes_the_branch(tiny_tokenizer):
    model = ScriptedBackend(tiny_tokenizer, [FLAWED])
    parent = rollout(model, "Ducks.", _config(), run_code=FakeSandbox())
    intervener = ScriptedBackend(tiny_tokenizer, chat_replies=[_verdict()])
    verdict = diagnose(intervener, problem="Ducks.", steps=parent.steps, taxonomy=DEFAULT_TAXONOMY)
    assert (verdict.flawless, verdict.step, verdict.flaw_type) == (False, 0, "variable_domain")
    prompt = intervener.chat_calls[0][-1]["content"]
    assert "### Step 0" in prompt and "variable_domain" in prompt and "Ducks." in prompt
    fixed = "```python\nprint('OBJECTIVE_VALUE: 13')\n```\n</think>\n\\boxed{13}<|im_end|>"
    model = ScriptedBackend(tiny_tokenizer, [fixed])
    sandbox = FakeSandbox(objective=13)
    cut = parent.steps[verdict.step].code_token_start
    child = continue_rollout(
        model, prompt_ids=parent.prompt_ids, prefix=parent.completion[:cut], prior_cells=[],
        hint_text=verdict.hint, config=_config(), run_code=sandbox,
    )  # fmt: skip
    assert child.completion[:cut] == parent.completion[:cut]
    assert child.steps[0].has_hint and child.final_answer.value == 13
    assert child.counts["hint"] == len(tiny_tokenizer.encode(" " + verdict.hint))
    assert 0 < child.token_modification_ratio < 0.5


def test_it_stops_running_code_at_the_cap_and_says_so(tiny_tokenizer):
    two_blocks = "```python\nprint(1)\n```\nAgain:\n```python\nprint(2)\n```\nDone.<|im_end|>"
    backend = ScriptedBackend(tiny_tokenizer, [two_blocks])
    sandbox = FakeSandbox()
    r = rollout(backend, "P.", _config(max_code_calls=1), run_code=sandbox)
    assert len(sandbox.calls) == 1 and r.code_calls == 1
    assert CODE_LIMIT_NOTICE.strip() in r.steps[0].output
    assert r.steps[1].output == NOT_RUN_OUTPUT and r.results[1]["status"] == "not_run"


def test_it_replays_earlier_cells_and_counts_failed_calls(tiny_tokenizer):
    text = "```python\nx = 1\n```\n```python\nprint(x)\n```\nok<|im_end|>"
    sandbox = FakeSandbox(status="error")
    r = rollout(ScriptedBackend(tiny_tokenizer, [text]), "P.", _config(), run_code=sandbox)
    assert [c[1] for c in sandbox.calls] == [[], ["x = 1\n"]]
    assert r.failed_code_calls == 2 and "NameError" in r.steps[1].output


def test_it_gives_each_sample_its_own_seed_and_warns_near_the_cap(tiny_tokenizer):
    text = "```python\nprint(1)\n```\nok<|im_end|>"
    backend = ScriptedBackend(tiny_tokenizer, [text, text])
    from curation.engine import rollout_many

    rs = rollout_many(
        backend, ["P.", "P."], _config(seed=7, max_code_calls=3, notice_calls_left=2),
        run_code=FakeSandbox(),
    )  # fmt: skip
    assert [r.seed for r in backend.calls[0]] == [7, 8]
    assert all("2 code execution(s) left" in r.steps[0].output for r in rs)


def test_it_repairs_a_malformed_verdict_once(tiny_tokenizer):
    steps = rollout(ScriptedBackend(tiny_tokenizer, [FLAWED]), "D.", _config(),
                    run_code=FakeSandbox()).steps  # fmt: skip
    replies = ["Sure! {not json", "Here you go:\n```json\n" + _verdict(step=1) + "\n```"]
    intervener = ScriptedBackend(tiny_tokenizer, chat_replies=replies)
    verdict = diagnose(intervener, problem="D.", steps=steps, taxonomy=DEFAULT_TAXONOMY)
    assert verdict.error is None and verdict.step == 1 and verdict.attempts == 2
    repair = intervener.chat_calls[1][-1]["content"]
    assert "could not be used" in repair and "JSON" in repair
    assert intervener.chat_calls[1][-2] == {"role": "assistant", "content": "Sure! {not json"}


def test_it_returns_an_error_verdict_with_the_raw_text_when_repair_fails(tiny_tokenizer):
    steps = rollout(ScriptedBackend(tiny_tokenizer, [FLAWED]), "D.", _config(),
                    run_code=FakeSandbox()).steps  # fmt: skip
    replies = [_verdict(flaw_type="vibes"), _verdict(step=99)]
    intervener = ScriptedBackend(tiny_tokenizer, chat_replies=replies)
    verdict = diagnose(intervener, problem="D.", steps=steps, taxonomy=DEFAULT_TAXONOMY)
    assert verdict.error and "step" in verdict.error
    assert '"vibes"' in verdict.raw and "99" in verdict.raw
    assert len(intervener.chat_calls) == 2


def test_it_accepts_a_flawless_verdict_and_rejects_a_flaw_without_a_hint(tiny_tokenizer):
    steps = rollout(ScriptedBackend(tiny_tokenizer, [FLAWED]), "D.", _config(),
                    run_code=FakeSandbox()).steps  # fmt: skip
    ok = ScriptedBackend(tiny_tokenizer, chat_replies=['{"flawless": true, "rationale": "fine"}'])
    assert diagnose(ok, problem="D.", steps=steps, taxonomy=DEFAULT_TAXONOMY).flawless
    bad = ScriptedBackend(tiny_tokenizer, chat_replies=[_verdict(hint="")] * 2)
    assert "hint" in diagnose(bad, problem="D.", steps=steps, taxonomy=DEFAULT_TAXONOMY).error


def test_it_reports_an_endpoint_timeout_as_an_error_not_a_crash(tiny_tokenizer):
    backend = ScriptedBackend(tiny_tokenizer, [FLAWED], timeouts=1)
    r = rollout(backend, "D.", _config(), run_code=FakeSandbox())
    assert r.finish_reason == "error" and "timed out" in r.error
    intervener = ScriptedBackend(tiny_tokenizer, chat_timeouts=1)
    verdict = diagnose(intervener, problem="D.", steps=[], taxonomy=DEFAULT_TAXONOMY)
    assert "BackendTimeoutError" in verdict.error
    assert issubclass(BackendTimeoutError, RuntimeError)


def test_it_ships_the_seven_seed_flaw_types_and_repetition_with_template_hints():
    assert len(DEFAULT_TAXONOMY) == 8
    assert DEFAULT_TAXONOMY[-1]["code"] == "repeated_failing_code"
    assert {t["category"] for t in DEFAULT_TAXONOMY} == {"computation-driven", "domain knowledge"}
    assert set(HINT_TEMPLATES) == {t["code"] for t in DEFAULT_TAXONOMY}
    assert HINT_TEMPLATES["manual_computation"].endswith("```python\n")


def test_it_tags_the_think_prefix_as_prompt_side_tokens(tiny_tokenizer):
    r = rollout(ScriptedBackend(tiny_tokenizer, ["</think>\\boxed{1}<|im_end|>"]), "P.", _config(),
                run_code=FakeSandbox())  # fmt: skip
    forced = len(tiny_tokenizer.encode("<think>\n", add_special_tokens=False))
    assert set(r.completion.tags[:forced]) == {Tag.PROMPT}
    assert set(r.completion.tags[forced:]) == {Tag.MODEL}
    assert r.counts["forced"] == forced and r.counts["model"] == len(r.completion) - forced
    assert r.text.startswith("<think>\n</think>") and r.final_answer.value == 1


def test_a_hint_copied_from_the_prompts_template_is_sent_back_for_one_of_its_own(tiny_tokenizer):
    from curation.engine.intervener import EXAMPLE_HINT

    steps = rollout(ScriptedBackend(tiny_tokenizer, [FLAWED]), "D.", _config(),
                    run_code=FakeSandbox()).steps  # fmt: skip
    own = "Wait, I never ran the model; let me solve it."
    replies = [_verdict(step=1, hint=EXAMPLE_HINT), _verdict(step=1, hint=own)]
    intervener = ScriptedBackend(tiny_tokenizer, chat_replies=replies)
    verdict = diagnose(intervener, problem="D.", steps=steps, taxonomy=DEFAULT_TAXONOMY)
    assert (verdict.hint, verdict.attempts) == (own, 2)
    assert "placeholder" in intervener.chat_calls[1][-1]["content"]
    assert "replace every <...>" in intervener.chat_calls[0][-1]["content"]


def test_a_sandbox_that_cannot_start_stops_the_trajectory_as_infrastructure(
    tiny_tokenizer, sandbox_without_bubblewrap
):
    """No bubblewrap: the pool refuses to start. That is the infrastructure's failure: the
    trajectory stops with its own finish reason, the model never reads the sandbox's error,
    and the call is not counted as a failed code call of the model."""
    from curation.engine import INFRASTRUCTURE, SandboxUnavailableError, sandbox_check

    backend = ScriptedBackend(tiny_tokenizer, [FLAWED])
    r = rollout(backend, "Ducks.", _config())
    assert r.finish_reason == INFRASTRUCTURE and r.infrastructure_failed
    assert r.error.startswith("infrastructure: the solver sandbox could not run code")
    assert "bwrap not installed" in r.error
    assert "```output" not in r.text and "Sandbox" not in r.text
    assert r.counts["interpreter"] == 0 and (r.code_calls, r.failed_code_calls) == (0, 0)
    assert len(backend.calls) == 1  # generation stopped at the block
    with pytest.raises(SandboxUnavailableError, match="bwrap not installed"):
        sandbox_check()
