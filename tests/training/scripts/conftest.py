"""Fixtures for the training tests: the tiny random Qwen3, token-level SFT records built with
its tokenizer, problems whose rollouts run real code in the sandbox.

No database: these tests also run with ``-p no:django``.
"""

from __future__ import annotations

import json
import signal

import pytest

from tests.tiny_model import build_tiny_model

# A complete Pyomo model: the engine runs it as soon as it closes (max 3x, 0 <= x <= 4 → 12).
LP = """import pyomo.environ as pyo
m = pyo.ConcreteModel()
m.x = pyo.Var(bounds=(0, 4))
m.obj = pyo.Objective(expr=3 * m.x, sense=pyo.maximize)
pyo.SolverFactory('appsi_highs').solve(m)
print(f"OBJECTIVE_VALUE: {pyo.value(m.obj)}")
"""
# A random model writes no code: the forced start of the assistant turn carries the block.
CODE_PREFIX = f"<think>\n```python\n{LP}```\n"
LP_OUTPUT_BLOCK = "```output\nOBJECTIVE_VALUE: 12.0\n```\n"


@pytest.fixture(autouse=True)
def _fast_password_hashing():
    # Overrides the project-wide autouse fixture of the same name, which needs pytest-django's
    # ``settings``: training has no users and these tests must also run with -p no:django.
    return None


@pytest.fixture(autouse=True)
def _runs_in_tmp():
    # Overrides tests/training/conftest.py's fixture for the app's runs (it needs ``settings``):
    # the scripts write where each test tells them.
    return None


@pytest.fixture(autouse=True)
def _keep_sigterm_handler():
    # The entry points install a SIGTERM handler for graceful cancel; give pytest its own back.
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A tiny random Qwen3ForCausalLM + byte-level BPE tokenizer with the Qwen3 template."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen3") / "model")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_path)


@pytest.fixture(scope="session")
def sandbox():
    """The real solver sandbox (skips while ``solver_sandbox`` cannot be imported)."""
    try:
        import solver_sandbox
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        pytest.skip(f"solver_sandbox is not importable yet: {exc}")
    return solver_sandbox


def tagged_record(tokenizer, index: int) -> tuple[list[int], list[int]]:
    """``(input_ids, tags)`` of one CALM-shaped trajectory: prompt, reasoning + code (model),
    interpreter output, a hint, more model text."""

    def enc(text):
        return tokenizer.encode(text, add_special_tokens=False)

    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": f"Maximize 3x with 0 <= x <= {index + 2}."}],
        add_generation_prompt=True,
        tokenize=False,
    )
    segments = [
        (enc(prompt), 0),
        (enc("<think>\nLet me model it.\n```python\nprint(3 * 4)\n```\n"), 1),
        (enc("```output\n12\n```\n"), 2),
        (enc("Wait, the number of trips must be an integer."), 3),
        (enc(f" So the answer is {index}.\n</think>\nThe answer is \\boxed{{12}}.<|im_end|>"), 1),
    ]
    ids, tags = [], []
    for seg, tag in segments:
        ids += seg
        tags += [tag] * len(seg)
    return ids, tags


@pytest.fixture
def sft_file(tmp_path, tiny_tokenizer):
    """Four token_tags records and two labels records (the export's two shapes)."""
    from training.scripts.data import labels_from_tags

    lines = []
    for i in range(4):
        ids, tags = tagged_record(tiny_tokenizer, i)
        lines.append({"id": f"tags-{i}", "input_ids": ids, "token_tags": tags})
    for i in range(4, 6):
        ids, tags = tagged_record(tiny_tokenizer, i)
        labels = labels_from_tags(ids, tags, train_on_hints=False)
        lines.append({"id": f"labels-{i}", "input_ids": ids, "labels": labels, "weight": 1.0})
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    return path


def write_problems(path, problems):
    path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    return path
