"""Curation models, one module per domain; import them from here."""

from __future__ import annotations

from .batches import Batch, BatchItem, BatchRound
from .datasets import DatasetEntry, DatasetVersion
from .endpoints import ModelEndpoint
from .jobs import Job
from .problems import AnswerFlag, AnswerStatus, AnswerVersion, Benchmark, Problem
from .reviews import (
    BatchReviewPolicy,
    Comment,
    LockTakeover,
    ReviewAssignment,
    ReviewDecision,
    ReviewLock,
)
from .taxonomy import FlawCategory, FlawType
from .trajectories import CheckFinding, Diagnosis, FlawLabel, Hint, Trajectory

__all__ = [
    "AnswerFlag",
    "AnswerStatus",
    "AnswerVersion",
    "Batch",
    "BatchItem",
    "BatchReviewPolicy",
    "BatchRound",
    "Benchmark",
    "CheckFinding",
    "Comment",
    "DatasetEntry",
    "DatasetVersion",
    "Diagnosis",
    "FlawCategory",
    "FlawLabel",
    "FlawType",
    "Hint",
    "Job",
    "LockTakeover",
    "ModelEndpoint",
    "Problem",
    "ReviewAssignment",
    "ReviewDecision",
    "ReviewLock",
    "Trajectory",
]
