"""The rollout loop: generate until a ```python block closes, run it, append its output as
INTERPRETER tokens, go on; continue a stored prefix from a hint without re-tokenizing it."""

from __future__ import annotations

import io
import logging
import time
import tokenize
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .answers import FinalAnswer, extract_final_answer, last_optimal_objective
from .backends.base import Backend, GenerationRequest
from .branching import BranchPoint, branch_point, is_replayed
from .fingerprint import backend_fingerprint, prompt_record
from .format import (
    CODE_LEFT_NOTICE,
    CODE_LIMIT_NOTICE,
    NOT_RUN_OUTPUT,
    Step,
    cut_offset,
    fence_state_of,
    last_code_block,
    output_block,
    output_text,
    split_steps,
    truncate_output,
)
from .prompts import AUTO, REASONER_SYSTEM_PROMPT, Prompts, think_prefix_for
from .sandbox import (
    INFRASTRUCTURE,
    RunCode,
    infrastructure_reason,
    is_infrastructure_failure,
    run_in_sandbox,
)
from .tokens import Tag, TaggedTokens

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = REASONER_SYSTEM_PROMPT
REPETITION = "repetition"  # the finish reason of a trajectory stuck on one failing block
# Response length, one definition for curation's statistics and evaluation alike: the tokens
# generated, the Reasoner's own plus hints; not interpreter output (context the sandbox wrote)
# nor the forced think prefix (prompt side).
RESPONSE_LENGTH_DEFINITION = (
    "generated tokens: model + hint (interpreter output and the forced think prefix excluded)"
)


@dataclass
class RolloutConfig:
    """How a trajectory is generated. Defaults follow CoRT's inference settings."""

    max_code_calls: int = 15
    max_new_tokens: int = 16384  # budget over the whole completion, interpreter tokens included
    code_timeout_s: float = 30.0
    output_max_chars: int = 800  # longer outputs keep head + tail (CoRT: 400 + 400)
    output_head_chars: int = 400
    output_tail_chars: int = 400
    notice_calls_left: int = 0  # also say "N left" when this few calls remain (0: cap only)
    temperature: float | None = 0.6
    top_p: float | None = 0.95
    seed: int | None = None
    # The start of the assistant turn, tagged PROMPT (forced, never trained on, never cut away):
    # "auto" forces "<think>\n" unless the chat template opens it (``think_prefix_for``).
    think_prefix: str = AUTO
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # (problem, solution) sent as an earlier user/assistant exchange; None: no example.
    worked_example: tuple[str, str] | None = None
    # Stop (finish reason "repetition") when this many code blocks in a row are the same
    # failing code, normalised (0: never).
    max_repeated_failures: int = 3
    # Credit the sandbox's last optimal objective as the answer when nothing was boxed (off: the
    # answer is what the model stated; the objective is still recorded beside it).
    credit_sandbox_answer: bool = False
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    code_workers: int = 2  # code blocks of different sequences run in parallel


@dataclass
class Rollout:
    """One generated trajectory. ``completion`` is everything after the prompt, tagged."""

    prompt_ids: list[int]
    completion: TaggedTokens
    steps: list[Step]
    results: list[dict[str, Any] | None]  # sandbox result per code block (None: unknown)
    final_answer: FinalAnswer | None
    # "eos", "budget", "context", "error" (the endpoint), "repetition", "infrastructure" (the
    # sandbox could not run code: not the model's doing; ``error`` says why)
    finish_reason: str
    text: str
    wall_ms: float
    code_calls: int = 0
    failed_code_calls: int = 0
    error: str | None = None
    problem: str = ""
    # What the engine noticed about the route (e.g. a text-only server that re-tokenized the
    # prompt differently from the stored ids): shown on the trajectory.
    warnings: list[dict[str, Any]] = field(default_factory=list)
    sandbox_objective: float | None = None  # the last optimal solve's objective, shown beside
    # Which tokenizer made the ids (``fingerprint.tokenizer_fingerprint``) and the prompts the
    # rollout was started with (``fingerprint.prompt_record``; empty for a continuation, whose
    # prompt ids are its parent's).
    tokenizer: str = ""
    prompts: dict[str, Any] = field(default_factory=dict)

    @property
    def infrastructure_failed(self) -> bool:
        """Stopped because the sandbox could not run code: no verdict on the model."""
        return self.finish_reason == INFRASTRUCTURE

    @property
    def counts(self) -> dict[str, int]:
        """Token counts by tag (prompt, model, interpreter, hint) and code-call counts."""
        out = self.completion.counts()
        out["forced"] = out["prompt"]  # the forced think prefix, part of the prompt side
        out["prompt"] = len(self.prompt_ids)
        out["code_calls"] = self.code_calls
        out["failed_code_calls"] = self.failed_code_calls
        return out

    @property
    def response_tokens(self) -> int:
        """The response length (``RESPONSE_LENGTH_DEFINITION``)."""
        c = self.completion.counts()
        return c["model"] + c["hint"]

    @property
    def token_modification_ratio(self) -> float:
        """Hint tokens / generated (model + hint) tokens: CALM's headline statistic."""
        c = self.completion.counts()
        generated = c["model"] + c["hint"]
        return c["hint"] / generated if generated else 0.0

    def cut_offset(self, decode, step_index: int, char_index: int) -> int:
        """Token offset in ``completion`` to cut inside step ``step_index``'s reasoning."""
        return cut_offset(self.completion, decode, step_index, char_index, self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "prompt_ids": list(self.prompt_ids),
            "completion": self.completion.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "results": list(self.results),
            "final_answer": self.final_answer.to_dict() if self.final_answer else None,
            "finish_reason": self.finish_reason,
            "text": self.text,
            "wall_ms": self.wall_ms,
            "code_calls": self.code_calls,
            "failed_code_calls": self.failed_code_calls,
            "error": self.error,
            "counts": self.counts,
            "warnings": list(self.warnings),
            "sandbox_objective": self.sandbox_objective,
            "tokenizer": self.tokenizer,
            "prompts": dict(self.prompts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rollout:
        return cls(
            prompt_ids=list(data["prompt_ids"]),
            completion=TaggedTokens.from_dict(data["completion"]),
            steps=[Step.from_dict(s) for s in data["steps"]],
            results=list(data.get("results") or []),
            final_answer=FinalAnswer.from_dict(data.get("final_answer")),
            finish_reason=data["finish_reason"],
            text=data["text"],
            wall_ms=data["wall_ms"],
            code_calls=data.get("code_calls", 0),
            failed_code_calls=data.get("failed_code_calls", 0),
            error=data.get("error"),
            problem=data.get("problem", ""),
            warnings=list(data.get("warnings") or []),
            sandbox_objective=data.get("sandbox_objective"),
            tokenizer=data.get("tokenizer") or "",
            prompts=dict(data.get("prompts") or {}),
        )


@dataclass
class _Seq:
    """A trajectory being generated."""

    index: int
    problem: str
    prompt_ids: list[int]
    completion: TaggedTokens
    text: str  # decoded completion, segment by segment
    step_start: int  # char offset in ``text`` where the current step began
    cells: list[str]  # code replayed before the next block
    results: list[dict[str, Any] | None]
    code_calls: int
    failed: int = 0
    calls_made: int = 0
    finish: str | None = None
    error: str | None = None
    repeats: int = 0  # how many code blocks in a row were this same failing code
    last_failed: str | None = None  # normalised
    warnings: list[dict[str, Any]] = field(default_factory=list)
    streamed: list[int] = field(default_factory=list)  # this call's tokens so far (preview)

    def step_text(self) -> str:
        return self.text[self.step_start :]


# --- public entry points ----------------------------------------------------------------------


def rollout(
    backend: Backend,
    problem: str,
    config: RolloutConfig | None = None,
    *,
    run_code: RunCode | None = None,
    on_update: OnUpdate | None = None,
) -> Rollout:
    """Generate one trajectory for ``problem`` (see ``rollout_many``)."""
    return rollout_many(backend, [problem], config, run_code=run_code, on_update=on_update)[0]


def rollout_many(
    backend: Backend,
    problems: Sequence[str],
    config: RolloutConfig | None = None,
    *,
    run_code: RunCode | None = None,
    on_update: OnUpdate | None = None,
) -> list[Rollout]:
    """Generate one trajectory per problem, all live sequences in one ``generate`` call per
    round: a sequence stopped at a code block gets it run, its output appended (INTERPRETER),
    and rejoins the next round. Repeat a problem in ``problems`` for several samples.
    ``on_update(progress)`` is called after every round (live previews)."""
    config = config or RolloutConfig()
    prompts = Prompts(system_prompt=config.system_prompt, worked_example=config.worked_example)
    prefix = think_prefix_for(backend, config.think_prefix)
    prefix_ids = backend.encode(prefix) if prefix else []
    seqs = []
    for i, problem in enumerate(problems):
        messages = prompts.reasoner_messages(problem)
        prompt_ids = backend.chat_prompt_ids(messages, **config.chat_template_kwargs)
        seq = _Seq(i, problem, prompt_ids, TaggedTokens(), "", 0, [], [], 0)
        # The forced prefix belongs to the prompt side: tagged PROMPT, so it is never trained
        # on, never counted as generated and never cut away by a branch.
        _absorb(backend, seq, prefix_ids, Tag.PROMPT)
        seqs.append(seq)
    out = _run(backend, seqs, config, run_code or run_in_sandbox, on_update)
    record = prompts_of(config)
    for r in out:
        r.prompts = dict(record)
    return out


def prompts_of(config: RolloutConfig) -> dict[str, Any]:
    """The prompt record (``fingerprint.prompt_record``) of a rollout config."""
    return prompt_record(
        system_prompt=config.system_prompt,
        worked_example=config.worked_example,
        think_prefix=config.think_prefix,
        chat_template_kwargs=config.chat_template_kwargs,
    )


def continue_rollout(
    backend: Backend,
    *,
    prompt_ids: Sequence[int],
    prefix: TaggedTokens,
    prior_cells: Sequence[str],
    hint_text: str,
    config: RolloutConfig | None = None,
    run_code: RunCode | None = None,
    prior_results: Sequence[dict[str, Any] | None] | None = None,
    problem: str = "",
    on_update: OnUpdate | None = None,
) -> Rollout:
    """Continue a stored trajectory from a hint: the stored ``prefix`` ids (up to the branch
    point) + the hint's ids (tag HINT), then generation resumes. Only the suffix is generated;
    the prefix is neither decoded-and-re-encoded nor passed through the chat template again.
    ``prior_cells`` are the prefix's code blocks (replayed before new code).
    A hint may hold a whole ```python block: it is run right after the hint."""
    config = config or RolloutConfig()
    completion = prefix.copy()
    text = backend.decode(completion.ids)
    runs = [(a, b) for tag, a, b in completion.runs() if tag == Tag.INTERPRETER]
    step_start = len(backend.decode(completion.ids[: runs[-1][1]])) if runs else 0
    results: list[dict[str, Any] | None] = list(prior_results or [None] * len(runs))[: len(runs)]
    results += [None] * (len(runs) - len(results))
    seq = _Seq(
        0, problem, list(prompt_ids), completion, text, step_start, list(prior_cells), results,
        code_calls=len(runs),
        failed=sum(1 for r in results if r and r.get("status") not in ("ok", "not_run")),
    )  # fmt: skip
    hint = hint_text
    if hint and text and not text[-1].isspace() and not hint[0].isspace():
        hint = " " + hint  # a hint cut into a sentence starts as a new one
    if hint:
        _absorb(backend, seq, backend.encode(hint), Tag.HINT)
    return _run(backend, [seq], config, run_code or run_in_sandbox, on_update)[0]


def branch_rollout(
    backend: Backend,
    *,
    prompt_ids: Sequence[int],
    completion: TaggedTokens,
    steps: Sequence[Step],
    step_index: int,
    hint_text: str,
    char_offset: int | None = None,
    config: RolloutConfig | None = None,
    run_code: RunCode | None = None,
    problem: str = "",
    on_update: OnUpdate | None = None,
) -> tuple[Rollout, BranchPoint]:
    """A new branch of a stored trajectory: the hint goes before step ``step_index`` (or inside
    its reasoning at ``char_offset``) and generation resumes from there. The cut, the replayed
    cells and their results come from ``branch_point``; every caller branches through here."""
    point = branch_point(
        completion, steps, step_index, char_offset=char_offset, decode=backend.decode
    )
    result = continue_rollout(
        backend,
        prompt_ids=prompt_ids,
        prefix=completion[: point.offset],
        prior_cells=point.prior_cells,
        prior_results=point.prior_results,
        hint_text=hint_text,
        config=config,
        run_code=run_code,
        problem=problem,
        on_update=on_update,
    )
    return result, point


def token_offset_for_char(
    tokenizer_or_decode: Any,
    completion: TaggedTokens,
    steps: Sequence[Step] | None,
    step_index: int,
    char_index: int,
) -> int:
    """Completion token offset at which to cut inside step ``step_index``'s reasoning, at the
    token boundary at or before char ``char_index`` (``completion[:offset]`` is the prefix).
    Takes a tokenizer (``decode``) or a decode callable."""
    decode = _decoder(tokenizer_or_decode)
    return cut_offset(completion, decode, step_index, char_index, steps)


def _decoder(tokenizer_or_decode: Any):
    if callable(tokenizer_or_decode) and not hasattr(tokenizer_or_decode, "decode"):
        return tokenizer_or_decode
    tok = tokenizer_or_decode
    return lambda ids: tok.decode(list(ids), skip_special_tokens=False)


# --- the loop -----------------------------------------------------------------------------------


@dataclass
class Progress:
    """What ``on_update`` receives after each round: one entry per sequence."""

    index: int
    text: str  # the decoded completion so far
    tokens: int
    code_calls: int
    finished: bool


OnUpdate = Callable[[list[Progress]], None]


def _report(
    on_update: OnUpdate | None, seqs: list[_Seq], partial: dict[int, str] | None = None
) -> None:
    """``partial``: text a sequence's current ``generate`` call has decoded so far, by index."""
    if on_update is None:
        return
    partial = partial or {}
    try:
        on_update(
            [Progress(s.index, s.text + partial.get(s.index, ""),
                      len(s.completion) + len(s.streamed), s.code_calls, s.finish is not None)
             for s in seqs]
        )  # fmt: skip
    except Exception:  # a live preview must never break a rollout
        log.exception("on_update callback failed")


# A streaming backend's tokens reach ``on_update`` every this many tokens or seconds, which
# ever comes first, so a long decode shows its text growing between code calls.
STREAM_EVERY_TOKENS = 32
STREAM_EVERY_S = 1.0


class _Streamer:
    """Turns a streaming backend's ``on_tokens(k, ids)`` into ``on_update`` reports. Preview
    only: what it saw is dropped when the call returns, and the sequence takes the result's
    token ids (the stored tokens never come from here)."""

    def __init__(self, backend: Backend, on_update: OnUpdate, seqs: list[_Seq], live: list[_Seq]):
        self.backend, self.on_update, self.seqs, self.live = backend, on_update, seqs, live
        self._last_s = time.monotonic()
        self._last_n = 0

    def __call__(self, k: int, ids: list[int]) -> None:
        try:
            self.live[k].streamed = list(ids)
            total = sum(len(s.streamed) for s in self.live)
            now = time.monotonic()
            if total - self._last_n < STREAM_EVERY_TOKENS and now - self._last_s < STREAM_EVERY_S:
                return
            self._last_s, self._last_n = now, total
            # A token may end inside a multi-byte character: leave its half out of the preview.
            partial = {
                s.index: self.backend.decode(s.streamed).rstrip("\ufffd")
                for s in self.live
                if s.streamed
            }
            _report(self.on_update, self.seqs, partial)
        except Exception:  # a live preview must never break a rollout
            log.exception("streaming preview failed")


def _run(
    backend: Backend,
    seqs: list[_Seq],
    config: RolloutConfig,
    run_code,
    on_update: OnUpdate | None = None,
) -> list[Rollout]:
    started = time.monotonic()
    live = list(seqs)
    with ThreadPoolExecutor(max_workers=max(1, config.code_workers)) as pool:
        while live:
            _run_pending_code(backend, live, config, run_code, pool)
            _report(on_update, seqs)
            for seq in live:
                _check_budget(backend, seq, config)
            live = [s for s in live if s.finish is None]
            if not live:
                break
            requests = [_request(backend, s, config) for s in live]
            try:
                if on_update is not None and getattr(backend, "streams", False):
                    streamer = _Streamer(backend, on_update, seqs, live)
                    results = backend.generate(requests, on_tokens=streamer)
                else:
                    results = backend.generate(requests)
            except Exception as exc:  # the endpoint failed (after its own retries)
                for seq in live:
                    seq.finish, seq.error = "error", f"{type(exc).__name__}: {exc}"
                break
            finally:
                for seq in live:
                    seq.streamed = []
            for seq, result in zip(live, results, strict=True):
                seq.calls_made += 1
                _absorb(backend, seq, result.token_ids, Tag.MODEL)
                _note_warnings(seq, result.warnings)
                if result.finish_reason == "error":
                    seq.finish, seq.error = "error", result.error or "generation failed"
                elif result.finish_reason == "eos":
                    seq.finish = "eos"
                elif result.finish_reason == "length":
                    seq.finish = "budget" if _left(seq, config) <= 0 else "context"
                elif not result.token_ids:
                    seq.finish, seq.error = "error", "the backend returned no tokens"
            _report(on_update, seqs)
            live = [s for s in live if s.finish is None]
    wall_ms = (time.monotonic() - started) * 1000
    return [_finish(backend, s, wall_ms, config) for s in seqs]


MAX_WARNINGS = 20


def _note_warnings(seq: _Seq, warnings: Sequence[dict[str, Any]]) -> None:
    """Keep the route's warnings: each kind once in a row, at most ``MAX_WARNINGS``."""
    for warning in warnings:
        if len(seq.warnings) >= MAX_WARNINGS:
            return
        if seq.warnings and seq.warnings[-1].get("kind") == warning.get("kind") == (
            "retokenization_unchecked"
        ):
            continue
        seq.warnings.append({**warning, "at_token": len(seq.completion)})


def _left(seq: _Seq, config: RolloutConfig) -> int:
    return config.max_new_tokens - len(seq.completion)


def _request(backend: Backend, seq: _Seq, config: RolloutConfig) -> GenerationRequest:
    room = _left(seq, config)
    if backend.context_length:
        room = min(room, backend.context_length - len(seq.prompt_ids) - len(seq.completion))
    seed = None if config.seed is None else config.seed + seq.index + 1000 * seq.calls_made
    return GenerationRequest(
        prompt_ids=seq.prompt_ids + seq.completion.ids,
        max_new_tokens=room,
        temperature=config.temperature,
        top_p=config.top_p,
        seed=seed,
        fence=fence_state_of(seq.step_text()),
    )


def _check_budget(backend: Backend, seq: _Seq, config: RolloutConfig) -> None:
    if seq.finish is not None:
        return
    if _left(seq, config) <= 0:
        # Interpreter output may run past the budget: cut it there, but never cut into a
        # hint (a person's or the Intervener's words are kept whole, as they were inserted).
        hint_end = max((end for tag, _, end in seq.completion.runs() if tag == Tag.HINT), default=0)
        keep = max(config.max_new_tokens, hint_end)
        if len(seq.completion) > keep:
            seq.completion = seq.completion[:keep]
            seq.text = backend.decode(seq.completion.ids)
        seq.finish = "budget"
    elif backend.context_length and (
        len(seq.prompt_ids) + len(seq.completion) >= backend.context_length
    ):
        seq.finish = "context"


def _absorb(backend: Backend, seq: _Seq, ids: Sequence[int], tag: Tag) -> None:
    if ids:
        seq.completion.extend(ids, tag)
        seq.text += backend.decode(ids)


def _pending_code(seq: _Seq) -> str | None:
    """The code of a ```python block closed in the current step and not run yet."""
    if seq.finish is not None:
        return None
    found = last_code_block(seq.step_text())
    return found[1] if found else None


def _run_pending_code(backend, live, config, run_code, pool) -> None:
    jobs = []
    for seq in live:
        code = _pending_code(seq)
        if code is None:
            continue
        if seq.code_calls >= config.max_code_calls:
            jobs.append((seq, code, None))  # past the cap: not run, the model is told so
        else:
            cells = list(seq.cells)
            jobs.append((seq, code, pool.submit(run_code, code, cells, config.code_timeout_s)))
    for seq, code, future in jobs:
        if future is None:
            result: dict[str, Any] = {"status": "not_run", "stdout": NOT_RUN_OUTPUT}
            shown = NOT_RUN_OUTPUT
        else:
            try:
                result = future.result()
            except Exception as exc:  # a run_code that raises is a harness error, not a crash
                result = {"status": "harness_error", "stdout": "", "stderr": "",
                          "detail": f"{type(exc).__name__}: {exc}"}  # fmt: skip
            if is_infrastructure_failure(result):
                # The sandbox failed, not the code: the model is never shown the error, the
                # call is not counted as the model's, and the trajectory stops here.
                seq.finish, seq.error = INFRASTRUCTURE, infrastructure_reason(result)
                continue
            seq.code_calls += 1
            if result.get("status") != "ok":
                seq.failed += 1
            if is_replayed(result):
                seq.cells.append(code)
            _count_repeat(seq, code, result)
            shown = truncate_output(
                output_text(result),
                config.output_max_chars,
                config.output_head_chars,
                config.output_tail_chars,
            )
        block = output_block(shown, after=seq.text)
        left = config.max_code_calls - seq.code_calls
        if future is not None and left <= 0:
            block += CODE_LIMIT_NOTICE
        elif future is not None and left <= config.notice_calls_left:
            block += CODE_LEFT_NOTICE.format(left=left)
        seq.results.append(result)
        _absorb(backend, seq, backend.encode(block), Tag.INTERPRETER)
        seq.step_start = len(seq.text)
        if config.max_repeated_failures and seq.repeats >= config.max_repeated_failures:
            seq.finish = REPETITION


def normalise_code(code: str) -> str:
    """The code's Python tokens without comments, blank lines and spacing: two blocks that
    differ only there are the same attempt (text that does not tokenize: spacing only)."""
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER}  # fmt: skip
    try:
        tokens = tokenize.generate_tokens(io.StringIO(code).readline)
        return " ".join(t.string for t in tokens if t.type not in skip)
    except (tokenize.TokenError, SyntaxError):
        return " ".join(code.split())


def _count_repeat(seq: _Seq, code: str, result: dict[str, Any]) -> None:
    if result.get("status") == "ok":
        seq.repeats, seq.last_failed = 0, None
        return
    key = normalise_code(code)
    if key == seq.last_failed:
        seq.repeats += 1
    else:
        seq.repeats, seq.last_failed = 1, key


def _finish(backend: Backend, seq: _Seq, wall_ms: float, config: RolloutConfig) -> Rollout:
    text = backend.decode(seq.completion.ids)
    steps = split_steps(seq.completion, backend.decode, seq.results)
    executed = [r for r in seq.results if r is not None]
    final_step = steps[-1].reasoning if steps and steps[-1].is_final else ""
    return Rollout(
        prompt_ids=list(seq.prompt_ids),
        completion=seq.completion,
        steps=steps,
        results=list(seq.results),
        final_answer=extract_final_answer(
            text, executed, final_step=final_step, credit_sandbox=config.credit_sandbox_answer
        ),
        warnings=list(seq.warnings),
        sandbox_objective=last_optimal_objective(executed),
        finish_reason=seq.finish or "error",
        text=text,
        wall_ms=wall_ms,
        code_calls=seq.code_calls,
        failed_code_calls=seq.failed,
        error=seq.error,
        problem=seq.problem,
        tokenizer=backend_fingerprint(backend),
    )
