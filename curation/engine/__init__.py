"""The trajectory engine: generate CoRT-style trajectories (reasoning, code, output), continue
them from hints, find their final answers and ask an Intervener for their first flaw.

Plain Python with no Django import, so a training worker can use it; torch, transformers,
httpx and vllm are imported only inside the backends that need them. See README.md here.
"""

from __future__ import annotations

from .answer_rules import judge
from .answers import FinalAnswer, extract_final_answer
from .backends import (
    Backend,
    BackendError,
    BackendTimeoutError,
    GenerationRequest,
    GenerationResult,
    load_backend,
)
from .branching import BranchPoint, branch_point
from .format import Step, cut_offset, split_steps, truncate_output
from .intervener import DEFAULT_TAXONOMY, HINT_TEMPLATES, Facts, Verdict, diagnose, quote_offset
from .prompts import Prompts, think_prefix_for
from .rollout import (
    DEFAULT_SYSTEM_PROMPT,
    REPETITION,
    Progress,
    Rollout,
    RolloutConfig,
    branch_rollout,
    continue_rollout,
    rollout,
    rollout_many,
    token_offset_for_char,
)
from .sandbox import (
    INFRASTRUCTURE,
    SandboxUnavailableError,
    is_infrastructure_failure,
    run_in_sandbox,
    sandbox_check,
)
from .tokens import Tag, TaggedTokens

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "DEFAULT_TAXONOMY",
    "HINT_TEMPLATES",
    "INFRASTRUCTURE",
    "REPETITION",
    "Backend",
    "BackendError",
    "BackendTimeoutError",
    "BranchPoint",
    "Facts",
    "FinalAnswer",
    "GenerationRequest",
    "GenerationResult",
    "Progress",
    "Prompts",
    "Rollout",
    "RolloutConfig",
    "SandboxUnavailableError",
    "Step",
    "Tag",
    "TaggedTokens",
    "Verdict",
    "branch_point",
    "branch_rollout",
    "continue_rollout",
    "cut_offset",
    "diagnose",
    "extract_final_answer",
    "is_infrastructure_failure",
    "judge",
    "load_backend",
    "quote_offset",
    "rollout",
    "rollout_many",
    "run_in_sandbox",
    "sandbox_check",
    "split_steps",
    "think_prefix_for",
    "token_offset_for_char",
    "truncate_output",
]
