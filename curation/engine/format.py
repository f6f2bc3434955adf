"""The CoRT trajectory format: fences, output blocks, truncation, and splitting into steps.

A completion (one assistant turn) reads::

    <think>
    reasoning ...
    ```python
    code ...
    ```
    ```output
    stdout, or the traceback
    ```
    more reasoning, code, output ...
    </think>
    final answer with \\boxed{...}

Only ``python`` blocks are executed. Output blocks are written by the engine and tagged
INTERPRETER, so steps are found from the tags (each INTERPRETER run closes one step) rather than
by re-parsing text the model could have imitated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .tokens import Tag, TaggedTokens

Decode = Callable[[Sequence[int]], str]

FENCE = "```"
CODE_LANGS = frozenset({"python", "py", "python3"})
TRUNCATION_MARKER = "\n...\n(output truncated)\n...\n"
CODE_LIMIT_NOTICE = (
    "\nThe maximum number of code executions has been reached: no more code can be run. "
    "Reason with the results above and give the final answer.\n"
)
CODE_LEFT_NOTICE = "\nNote: {left} code execution(s) left.\n"
NOT_RUN_OUTPUT = "Code execution limit reached: this code was not run."


# --- fences ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FenceState:
    """Where a scan of trajectory text stands: inside which fenced block, and the unfinished
    last line (a fence is only recognized at the start of a line)."""

    open: str | None = None  # "python", "other" or None
    line: str = ""


def scan_fences(text: str, state: FenceState = FenceState()) -> tuple[FenceState, int | None]:
    """Scan ``text`` (continuing ``state``). Return the new state and, if a ```python block
    closes inside ``text``, the index in ``text`` just after its closing backticks (the scan
    stops there). A closing fence counts as soon as its backticks are written: inside a python
    block nothing else may start a line with them, so there is no need to wait for the newline.
    """
    open_, line = state.open, state.line
    pos = 0
    while pos <= len(text):
        nl = text.find("\n", pos)
        end = len(text) if nl < 0 else nl
        chunk = text[pos:end]
        full = line + chunk
        stripped = full.strip()
        complete = nl >= 0
        if open_ == "python" and stripped.startswith(FENCE):
            close = pos + max(0, full.find(FENCE) + len(FENCE) - len(line))
            # The rest of the closing fence's line is not a new fence: start clean after it.
            return FenceState(None, ""), close
        if complete:
            if open_ is None and stripped.startswith(FENCE):
                lang = stripped[len(FENCE) :].strip().lower()
                open_ = "python" if lang in CODE_LANGS else "other"
            elif open_ == "other" and stripped.startswith(FENCE) and not stripped.strip("`"):
                open_ = None
            line = ""
            pos = nl + 1
        else:
            line = full
            break
    return FenceState(open_, line), None


def fence_state_of(text: str) -> FenceState:
    """The fence state after ``text`` (closed python blocks are passed over)."""
    state = FenceState()
    rest = text
    while True:
        state, close = scan_fences(rest, state)
        if close is None:
            return state
        rest = rest[close:]


# --- incremental decoding -------------------------------------------------------------------


class IncrementalDecoder:
    """Decode tokens one push at a time, holding back ids that end inside a multi-byte
    character, so that the concatenated pieces equal ``decode(all ids)`` for byte-level BPE."""

    def __init__(self, decode: Decode, hold_max: int = 8):
        self._decode = decode
        self._pending: list[int] = []
        self._hold_max = hold_max

    def push(self, ids: Sequence[int]) -> str:
        self._pending.extend(ids)
        if not self._pending:
            return ""
        text = self._decode(self._pending)
        if text.endswith("\ufffd") and len(self._pending) < self._hold_max:
            return ""
        self._pending = []
        return text

    def flush(self) -> str:
        text = self._decode(self._pending) if self._pending else ""
        self._pending = []
        return text


def decode_with_offsets(decode: Decode, ids: Sequence[int]) -> tuple[str, list[int]]:
    """The text of ``ids`` and, per token, the char offset where it starts (tokens inside a
    multi-byte character share the character's offset). ``offsets[len(ids)]`` is the end."""
    dec = IncrementalDecoder(decode)
    parts: list[str] = []
    offsets: list[int] = []
    length = 0
    group_start = 0
    for token in ids:
        if not dec._pending:
            group_start = length
        offsets.append(group_start)
        piece = dec.push([token])
        parts.append(piece)
        length += len(piece)
    tail = dec.flush()
    parts.append(tail)
    length += len(tail)
    offsets.append(length)
    return "".join(parts), offsets


# --- interpreter output ---------------------------------------------------------------------


def truncate_output(text: str, limit: int = 800, head: int = 400, tail: int = 400) -> str:
    """CoRT's truncation: longer than ``limit`` chars → first ``head`` + marker + last ``tail``."""
    if limit <= 0 or len(text) <= limit:
        return text
    return text[:head] + TRUNCATION_MARKER + (text[-tail:] if tail > 0 else "")


def output_text(result: dict[str, Any]) -> str:
    """What the model is shown for one sandbox result: stdout, plus stderr (the traceback) when
    the run failed, plus a one-line reason when a limit killed it without a traceback."""
    stdout = result.get("stdout") or ""
    status = result.get("status", "ok")
    if status == "ok":
        return stdout
    parts = [stdout.rstrip("\n")] if stdout.strip() else []
    stderr = (result.get("stderr") or "").rstrip("\n")
    if stderr:
        parts.append(stderr)
    elif status != "error":
        detail = result.get("detail") or ""
        parts.append(f"{_STATUS_TEXT.get(status, status)}{': ' + detail if detail else ''}")
    elif result.get("error"):
        err = result["error"]
        parts.append(f"{err.get('type', 'Error')}: {err.get('message', '')}")
    return "\n".join(parts)


_STATUS_TEXT = {
    "timeout": "TimeoutError: the code ran past its time limit",
    "cpu_limit": "TimeoutError: the code used up its CPU time",
    "memory_limit": "MemoryError: the code ran out of memory",
    "output_limit": "OutputLimitError: the code printed too much and was stopped",
    "killed": "Killed",
    "harness_error": "SandboxError: the sandbox failed to run the code",
}


def output_block(text: str, *, after: str = "") -> str:
    """The ```output block appended after a code block. ``after`` is the completion text so far:
    when the model's closing fence has no newline yet, the block starts on a new line."""
    lead = "" if not after or after.endswith("\n") else "\n"
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{lead}```output\n{body}```\n"


# --- steps ----------------------------------------------------------------------------------


@dataclass
class Step:
    """One step of a trajectory: reasoning, then (except for the last step) code and output.

    Token offsets are relative to the completion (``completion.ids[token_start:token_end]``):
    ``code_token_start`` is the token holding the opening ```python fence and
    ``output_token_start`` the first INTERPRETER token; both are None for the final step.
    ``char_start`` is where the step starts in the decoded completion text.
    """

    index: int
    reasoning: str
    code: str | None
    output: str | None
    result: dict[str, Any] | None
    has_hint: bool
    token_start: int
    code_token_start: int | None
    output_token_start: int | None
    token_end: int
    char_start: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_final(self) -> bool:
        return self.code is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(**data)


def last_code_block(text: str) -> tuple[int, str] | None:
    """The last ```python block in ``text``: (char index of its opening fence, code)."""
    state = FenceState()
    pos = 0
    found: tuple[int, str] | None = None
    while True:
        before = state
        new_state, close = scan_fences(text[pos:], state)
        if close is None:
            break
        # Locate the opening fence of the block that just closed: scan again, line by line.
        seg = text[pos : pos + close]
        open_at = _python_open_index(seg, before)
        if open_at is not None:
            body_start = seg.find("\n", open_at) + 1 if before.open != "python" else 0
            found = (pos + open_at, seg[body_start : seg.rfind(FENCE)].rstrip(" \t"))
        pos += close
        state = new_state
    return found


def _python_open_index(seg: str, state: FenceState) -> int | None:
    if state.open == "python":
        return 0  # the block was opened before this text (e.g. by a hint)
    idx = 0
    open_at = None
    open_ = state.open
    for line in seg.splitlines(keepends=True):
        s = line.strip()
        if line.endswith("\n"):
            if open_ is None and s.startswith(FENCE):
                lang = s[3:].strip().lower()
                open_ = "python" if lang in CODE_LANGS else "other"
                if open_ == "python":
                    open_at = idx + line.find(FENCE)
            elif open_ == "other" and s.startswith(FENCE) and not s.strip("`"):
                open_ = None
        idx += len(line)
    return open_at


def split_steps(
    completion: TaggedTokens,
    decode: Decode,
    results: Sequence[dict[str, Any] | None] | None = None,
) -> list[Step]:
    """Split a tagged completion into steps. Each INTERPRETER run is the output of one code
    block and closes a step; what follows the last run is the final (answer) step, present only
    when it holds any token. ``results[k]`` is the sandbox result of step k, where known."""
    text, offsets = decode_with_offsets(decode, completion.ids)
    steps: list[Step] = []
    start = 0
    runs = [(a, b) for tag, a, b in completion.runs() if tag == Tag.INTERPRETER]
    for k, (a, b) in enumerate(runs):
        seg = text[offsets[start] : offsets[a]]
        found = last_code_block(seg)
        if found is None:
            reasoning, code, code_tok = seg, "", a
        else:
            open_at, code = found
            reasoning = seg[:open_at]
            code_tok = _token_at(offsets, offsets[start] + open_at, start, a)
        steps.append(
            Step(
                index=k,
                reasoning=reasoning,
                code=code,
                output=_output_body(text[offsets[a] : offsets[b]]),
                result=(results[k] if results is not None and k < len(results) else None),
                has_hint=Tag.HINT in completion.tags[start:b],
                token_start=start,
                code_token_start=code_tok,
                output_token_start=a,
                token_end=b,
                char_start=offsets[start],
            )
        )
        start = b
    if start < len(completion):
        steps.append(
            Step(
                index=len(steps),
                reasoning=text[offsets[start] :],
                code=None,
                output=None,
                result=None,
                has_hint=Tag.HINT in completion.tags[start:],
                token_start=start,
                code_token_start=None,
                output_token_start=None,
                token_end=len(completion),
                char_start=offsets[start],
            )
        )
    return steps


def _output_body(block: str) -> str:
    """The text inside an ```output block (notices after it are kept, below the body)."""
    s = block.lstrip("\n")
    if s.startswith("```output\n"):
        s = s[len("```output\n") :]
        end = s.find("```")
        if end >= 0:
            body, rest = s[:end], s[end + 3 :].strip("\n")
            return body.rstrip("\n") + ("\n" + rest if rest else "")
    return s


def _token_at(offsets: Sequence[int], char: int, lo: int, hi: int) -> int:
    """The last token in [lo, hi] that starts at or before ``char`` (binary search)."""
    a, b = lo, hi
    while a < b:
        mid = (a + b + 1) // 2
        if offsets[mid] <= char:
            a = mid
        else:
            b = mid - 1
    return a


def cut_offset(
    completion: TaggedTokens,
    decode: Decode,
    step_index: int,
    char_index: int,
    steps: Sequence[Step] | None = None,
) -> int:
    """The completion token offset at which to cut "inside step ``step_index``'s reasoning at
    char ``char_index``": the token boundary at or before that char. ``completion[:offset]`` is
    then the prefix a hint continues from. ``char_index`` past the reasoning clamps to its end
    (just before the code fence, or the end of a final step)."""
    if steps is None:
        steps = split_steps(completion, decode)
    if not 0 <= step_index < len(steps):
        raise IndexError(f"step {step_index} out of range (0..{len(steps) - 1})")
    if char_index < 0:
        raise ValueError("char_index must be >= 0")
    step = steps[step_index]
    _, offsets = decode_with_offsets(decode, completion.ids)
    hi = step.code_token_start if step.code_token_start is not None else step.token_end
    if char_index >= len(step.reasoning):
        return hi
    return _token_at(offsets, step.char_start + char_index, step.token_start, hi)
