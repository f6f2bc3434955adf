"""From what a job left behind (output, result frames, the zygote's exit report) to a result.

The frames come from inside the untrusted process: every field is checked here before it is
used, and anything unexpected is a ``harness_error``, never an exception.
"""

from __future__ import annotations

import math
import os
import signal
from typing import Any

from .harness import HARNESS_EXIT
from .objective import decide, parse_printed_objective
from .protocol import FrameError, parse_frames
from .result import SandboxResult, SolverStatus, Status

_TERMINATIONS = {s.value for s in SolverStatus}
_FINAL_STATUSES = {Status.OK.value, Status.ERROR.value, Status.HARNESS_ERROR.value}
_SOLVE_KEYS = {"solver", "interface", "termination", "objective", "wall_ms", "cell"}
_SOLVE_OPTIONAL = {"routed_from", "error"}
_FINAL_KEYS = {
    "status",
    "exit_code",
    "error",
    "memory_error",
    "cpu_s",
    "maxrss_kb",
    "prior_cell_errors",
    "detail",
}
_MAX_TEXT = 4000
_MAX_ERRORS = 1000


def _text(value: Any, what: str, limit: int = 200) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise FrameError(f"bad {what}")
    return value


def _number(value: Any, what: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FrameError(f"bad {what}")
    if not math.isfinite(value) or (not optional and value < 0):
        raise FrameError(f"bad {what}")
    return float(value)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise FrameError(f"bad {what}")
    return value


def _cell(value: Any) -> int | str:
    if value == "main":
        return value
    cell = _int(value, "cell")
    if cell < 0:
        raise FrameError("bad cell")
    return cell


def _error(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != {"type", "message", "cell"}:
        raise FrameError("bad error record")
    return {
        "type": _text(value["type"], "error type", 1000),
        "message": _text(value["message"], "error message", _MAX_TEXT),
        "cell": _cell(value["cell"]),
    }


def check_solve(message: dict[str, Any]) -> dict[str, Any]:
    """A solve record with exactly the fields the hooks write, each of its type."""
    keys = set(message)
    if not keys >= _SOLVE_KEYS or keys - _SOLVE_KEYS - _SOLVE_OPTIONAL:
        raise FrameError("bad solve record fields")
    if message["termination"] not in _TERMINATIONS:
        raise FrameError("bad termination")
    out = {
        "solver": _text(message["solver"], "solver", 1000),
        "interface": _text(message["interface"], "interface", 1000),
        "termination": message["termination"],
        "objective": _number(message["objective"], "objective", optional=True),
        "wall_ms": _number(message["wall_ms"], "wall_ms"),
        "cell": _cell(message["cell"]),
    }
    for key in _SOLVE_OPTIONAL & keys:
        out[key] = _text(message[key], key, 1000)
    return out


def check_final(message: dict[str, Any]) -> dict[str, Any]:
    """The harness's final record, field by field."""
    if "status" not in message or set(message) - _FINAL_KEYS:
        raise FrameError("bad final record fields")
    if message["status"] not in _FINAL_STATUSES:
        raise FrameError("bad final status")
    out: dict[str, Any] = {"status": message["status"]}
    if "exit_code" in message:
        out["exit_code"] = _int(message["exit_code"], "exit_code")
    if message.get("error") is not None:
        out["error"] = _error(message["error"])
    if "memory_error" in message:
        if not isinstance(message["memory_error"], bool):
            raise FrameError("bad memory_error")
        out["memory_error"] = message["memory_error"]
    for key in ("cpu_s", "maxrss_kb"):
        if key in message:
            out[key] = _number(message[key], key)
    errors = message.get("prior_cell_errors", [])
    if not isinstance(errors, list) or len(errors) > _MAX_ERRORS:
        raise FrameError("bad prior_cell_errors")
    out["prior_cell_errors"] = [_error(e) for e in errors]
    if "detail" in message:
        out["detail"] = _text(message["detail"], "detail", _MAX_TEXT)
    return out


def read_frames(
    channel: bytes, nonce: bytes
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, str]:
    """(solves, final, tampered): the checked records, or why the channel is not trusted."""
    try:
        frames = parse_frames(channel, nonce)
        solves = [check_solve(m) for kind, m in frames if kind == b"S"]
        finals = [check_final(m) for kind, m in frames if kind == b"R"]
    except FrameError as exc:
        return [], None, str(exc)
    if len(finals) > 1:
        return solves, finals[0], "more than one final report"
    if finals and frames[-1][0] != b"R":
        return solves, finals[0], "solve records after the final report"
    return solves, (finals[0] if finals else None), ""


def build_result(io: Any, harness_detail: str = "") -> SandboxResult:
    """The verdict for one job driven by ``jobio.JobIO``."""
    import time

    exit_info = io.exit or {}
    limits = io.limits
    result = SandboxResult(
        status=Status.OK,
        stdout=io.out.text(),
        stderr=io.err.text(),
        truncated_bytes=io.out.dropped + io.err.dropped,
        stdout_bytes=io.out.total,
        stderr_bytes=io.err.total,
        wall_ms=round((time.monotonic() - io.started) * 1000, 3),
        cpu_ms=round((exit_info.get("utime", 0) + exit_info.get("stime", 0)) * 1000, 3),
        max_rss_mb=round(exit_info.get("maxrss_kb", 0) / 1024, 1),
        profile=io.profile,
        protections=io.zygote.protections,
    )
    solves, final, tampered = read_frames(bytes(io.channel), io.nonce)
    if io.channel_overflow:
        tampered = "the result channel overflowed"

    result.solve_count = len(solves)
    result.solves = solves[:1000]
    head, tail = io.out.raw()
    result.printed_objective = parse_printed_objective(tail or head)
    if io.out.dropped == 0 and tail:
        result.printed_objective = parse_printed_objective(head + tail)
    result.objective, result.solver_status, result.objective_verdict = decide(
        solves, result.printed_objective
    )

    status_word = exit_info.get("status")
    signum = None
    if status_word is not None:
        if os.WIFSIGNALED(status_word):
            signum = os.WTERMSIG(status_word)
            result.signal = signal.Signals(signum).name
        elif os.WIFEXITED(status_word):
            result.exit_code = os.WEXITSTATUS(status_word)
    if final is not None and not exit_info:
        # Answered before the zygote reaped the process: the harness's own accounting.
        result.cpu_ms = round(final.get("cpu_s", 0.0) * 1000, 3)
        result.max_rss_mb = round(final.get("maxrss_kb", 0.0) / 1024, 1)
    if final is not None:
        result.prior_cell_errors = final["prior_cell_errors"]
        result.error = final.get("error")
        if "exit_code" in final:
            result.exit_code = final["exit_code"]

    cpu_limit_ms = limits.cpu_budget_s * 1000
    if harness_detail:
        result.status, result.detail = Status.HARNESS_ERROR, harness_detail
    elif io.kill_reason is not None:
        result.status = io.kill_reason
        result.detail = io.kill_detail
        if io.kill_reason == Status.HARNESS_ERROR:
            result.objective, result.solver_status = None, None
    elif exit_info.get("lost"):
        io.zygote.broken = True
        result.status, result.detail = Status.HARNESS_ERROR, "lost contact with the zygote"
    elif tampered:
        result.status = Status.HARNESS_ERROR
        result.detail = f"result channel tampered with: {tampered}"
        result.objective, result.solver_status = None, None
    elif signum is not None:
        if signum == signal.SIGKILL and exit_info.get("oom_killed"):
            result.status = Status.MEMORY_LIMIT
            result.detail = f"the slot's memory cgroup limit ({limits.memory_mb} MB)"
        elif signum == signal.SIGXCPU or (
            signum == signal.SIGKILL and result.cpu_ms >= cpu_limit_ms - 50
        ):
            result.status = Status.CPU_LIMIT
            result.detail = f"CPU limit of {limits.cpu_budget_s:g} s reached"
        elif signum == signal.SIGKILL:
            result.status, result.detail = Status.KILLED, "killed by SIGKILL"
        else:
            result.status = Status.ERROR
            result.detail = f"terminated by {result.signal}"
            result.error = {"type": result.signal, "message": result.detail, "cell": "main"}
    elif final is None:
        if result.exit_code == HARNESS_EXIT:
            result.status, result.detail = Status.HARNESS_ERROR, "job set-up failed"
        elif result.exit_code:
            result.status = Status.ERROR
            result.detail = f"exited with code {result.exit_code} before reporting"
        else:
            result.status = Status.HARNESS_ERROR
            result.detail = "the program ended without a report (os._exit or a closed channel)"
    else:
        result.status = Status(final["status"])
        result.detail = final.get("detail", "")
        if final.get("memory_error"):
            result.status = Status.MEMORY_LIMIT
            result.detail = f"memory limit of {limits.memory_mb} MB reached"
    return result
