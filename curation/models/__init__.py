"""Curation models, one module per domain; import them from here."""

from __future__ import annotations

from .jobs import Job
from .problems import AnswerStatus, Benchmark, Problem

__all__ = ["AnswerStatus", "Benchmark", "Job", "Problem"]
