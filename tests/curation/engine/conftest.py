"""Fixtures for the engine tests: a tiny real model built offline, and its backends.

These tests need no database and run with or without pytest-django (``-p no:django``).
"""

from __future__ import annotations

import pytest

from tests.tiny_model import build_tiny_model


@pytest.fixture(autouse=True)
def _fast_password_hashing():
    # Overrides the project-wide autouse fixture of the same name, which needs pytest-django's
    # ``settings``: the engine has no users and these tests must also run with -p no:django.
    return None


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A tiny random Qwen3ForCausalLM + byte-level BPE tokenizer with the Qwen3 template."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen3") / "model")


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_path):
    from curation.engine import load_backend

    return load_backend(
        {"backend": "transformers", "model": str(tiny_model_path), "device": "cpu",
         "sampling": {"temperature": 0.0}}
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_backend):
    return tiny_backend.tokenizer


@pytest.fixture(scope="session")
def sandbox():
    """The real solver sandbox (skips while ``solver_sandbox`` cannot be imported)."""
    try:
        import solver_sandbox
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        pytest.skip(f"solver_sandbox is not importable yet: {exc}")
    return solver_sandbox
