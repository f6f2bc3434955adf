"""JSON exports of trajectories (reads only)."""

from __future__ import annotations

from .. import engine
from ..models import Trajectory

IGNORE_INDEX = -100  # what Hugging Face losses skip


def trajectory_export(trajectory: Trajectory) -> dict:
    """Everything a person or a script needs about one trajectory, as plain JSON."""
    problem = trajectory.problem
    return {
        "id": trajectory.pk,
        "problem": {
            "id": problem.pk,
            "benchmark": problem.benchmark.name,
            "external_id": problem.external_id,
            "question": problem.question,
            "reference_answer": problem.answer,
            "answer_status": problem.answer_status,
        },
        "parent_id": trajectory.parent_id,
        "branch": (
            {"step": trajectory.branch_step, "token_offset": trajectory.branch_token}
            if trajectory.parent_id
            else None
        ),
        "source": trajectory.source,
        "endpoint": trajectory.endpoint.name if trajectory.endpoint else None,
        "finish_reason": trajectory.finish_reason,
        "steps": trajectory.steps,
        "tokens": {
            "prompt": trajectory.n_prompt_tokens,
            "model": trajectory.n_model_tokens,
            "interpreter": trajectory.n_interpreter_tokens,
            "hint": trajectory.n_hint_tokens,
            "token_modification_ratio": trajectory.token_modification_ratio,
        },
        "code_calls": trajectory.n_code_calls,
        "failed_code_calls": trajectory.n_failed_code_calls,
        "hints": [
            {
                "id": hint.pk,
                "step": hint.step_index,
                "token_offset": hint.token_offset,
                "text": hint.text,
                "author": hint.author_label,
                "flaw_type": hint.flaw_type.code if hint.flaw_type else None,
                "branch_id": hint.branch_id,
                "created_at": hint.created_at.isoformat(),
            }
            for hint in trajectory.hints.select_related("author_user", "author_endpoint")
        ],
        "inserted_hint": _origin_hint(trajectory),
        "labels": [
            {
                "step": label.step_index,
                "flaw_type": label.flaw_type.code if label.flaw_type else None,
                "source": label.source,
                "author": label.author_label,
                "note": label.note,
                "reason": label.reason,
                "created_at": label.created_at.isoformat(),
            }
            for label in trajectory.labels.select_related(
                "flaw_type", "author_user", "author_endpoint"
            )
        ],
        "final_answer": trajectory.final_answer,
        "final_value": trajectory.final_value,
        "answer_source": trajectory.answer_source,
        "is_correct": trajectory.is_correct,
        "wall_ms": trajectory.wall_ms,
        "config": trajectory.config,
        "text": trajectory.text,
        "created_at": trajectory.created_at.isoformat(),
    }


def _origin_hint(trajectory: Trajectory) -> dict | None:
    hint = getattr(trajectory, "origin_hint", None)
    if hint is None:
        return None
    return {"id": hint.pk, "step": hint.step_index, "text": hint.text, "author": hint.author_label}


def trajectory_token_record(trajectory: Trajectory, *, train_on_hints: bool = True) -> dict:
    """One training record, ready for TRL: ``input_ids`` (prompt + completion) and ``labels``
    equal to the ids on the Reasoner's own tokens and -100 on the prompt and on interpreter
    output (and on hint tokens unless ``train_on_hints``); ``token_tags`` keeps the tags."""
    prompt = engine.TaggedTokens.from_bytes(bytes(trajectory.prompt_tokens))
    completion = engine.TaggedTokens.from_bytes(bytes(trajectory.completion_tokens))
    trained = {engine.Tag.MODEL} | ({engine.Tag.HINT} if train_on_hints else set())
    ids = [*prompt.ids, *completion.ids]
    tags = [int(engine.Tag.PROMPT)] * len(prompt) + [int(tag) for tag in completion.tags]
    labels = [
        token if tag in trained else IGNORE_INDEX for token, tag in zip(ids, tags, strict=True)
    ]
    return {
        "id": f"trajectory-{trajectory.pk}",
        "problem_id": trajectory.problem_id,
        "input_ids": ids,
        "labels": labels,
        "token_tags": tags,
    }


def trajectory_chat_record(trajectory: Trajectory, *, system_prompt: str = "") -> dict:
    """One conversation, for reading (train on ``tokens.jsonl``): the question as the user turn
    and the whole code-and-output turn (hints in place, as generated) as the assistant message.
    The interpreter's output inside it is marked: ``interpreter_spans`` are the [start, end)
    character ranges of the assistant content that the sandbox wrote, never the model."""
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": trajectory.problem.question})
    messages.append({"role": "assistant", "content": trajectory.text})
    return {
        "id": f"trajectory-{trajectory.pk}",
        "problem_id": trajectory.problem_id,
        "benchmark": trajectory.problem.benchmark.name,
        "messages": messages,
        "interpreter_spans": interpreter_spans(trajectory.text, trajectory.steps),
        "for_training": False,
    }


def interpreter_spans(text: str, steps: list[dict]) -> list[list[int]]:
    """Where the interpreter's output blocks stand in ``text``: each code step ends with one
    (the engine splits steps at its INTERPRETER tokens), the last ```output fence of the step."""
    spans = []
    for k, step in enumerate(steps):
        if step.get("code") is None:
            continue
        start = step.get("char_start", 0)
        end = steps[k + 1].get("char_start", len(text)) if k + 1 < len(steps) else len(text)
        at = text.rfind("```output", start, end)
        if at >= 0:
            spans.append([at, end])
    return spans
