"""The tiny offline model for tests (lives in the engine so benchmarks can build it too)."""

from __future__ import annotations

from curation.engine.tiny_model import build_tiny_model

__all__ = ["build_tiny_model"]
