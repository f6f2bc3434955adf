"""A deeply nested JSON answer from the Intervener is an Intervener error, not a crash
(``json.loads`` raises RecursionError there, which is not a ValueError). SCRIPTED STAND-IN for
the Intervener; the Reasoner's trajectory comes from the scripted backend too."""

from __future__ import annotations

from curation.engine import DEFAULT_TAXONOMY, RolloutConfig, diagnose, rollout
from curation.engine.backends.scripted import ScriptedBackend

TEXT = "Let x be the trips.\n```python\nprint(12)\n```\nSo 12.\n</think>\n\\boxed{12}<|im_end|>"
NESTED = '{"flawless": false, "step": 0, "rationale": ' + "[" * 100_000 + "]" * 100_000 + "}"


def _no_sandbox(code, **kwargs):
    return {"stdout": "12\n", "stderr": "", "status": "ok", "solves": []}


def test_it_records_a_deeply_nested_answer_as_an_intervener_error_with_its_raw_text(
    tiny_tokenizer,
):
    steps = rollout(ScriptedBackend(tiny_tokenizer, [TEXT]), "D.", RolloutConfig(),
                    run_code=_no_sandbox).steps  # fmt: skip
    intervener = ScriptedBackend(tiny_tokenizer, chat_replies=[NESTED, NESTED])
    verdict = diagnose(intervener, problem="D.", steps=steps, taxonomy=DEFAULT_TAXONOMY)
    assert verdict.error == "invalid verdict: the JSON is nested too deeply"
    assert verdict.raw.startswith('{"flawless": false') and len(verdict.raw) > 400_000
    assert verdict.attempts == 2
    assert "nested too deeply" in intervener.chat_calls[1][-1]["content"]
