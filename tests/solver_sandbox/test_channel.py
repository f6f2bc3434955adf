"""The result channel is untrusted: forged frames, garbage and floods are harness errors, and
neither they nor pathological sources make ``run()`` or ``route()`` raise."""

from __future__ import annotations

import json
import textwrap

import pytest

from solver_sandbox import Limits, Status
from solver_sandbox.pool import route
from solver_sandbox.protocol import frame
from solver_sandbox.verdict import read_frames
from tests.solver_sandbox.sandbox_helpers import assert_pool_healthy

NONCE = b"0123456789abcdef0123456789abcdef"
GOOD_SOLVE = {
    "solver": "highs",
    "interface": "pyomo",
    "termination": "optimal",
    "objective": 1.0,
    "wall_ms": 1.0,
    "cell": 0,
}
GOOD_FINAL = {"status": "ok", "exit_code": 0, "prior_cell_errors": []}

# (kind, body) pairs a job holding the nonce could write; each must be refused.
FORGED = {
    "unknown termination": (b"S", {**GOOD_SOLVE, "termination": "victory"}),
    "objective as text": (b"S", {**GOOD_SOLVE, "objective": "1700"}),
    "objective NaN": (b"S", {**GOOD_SOLVE, "objective": float("nan")}),
    "objective a list": (b"S", {**GOOD_SOLVE, "objective": [1]}),
    "objective a bool": (b"S", {**GOOD_SOLVE, "objective": True}),
    "solve without fields": (b"S", {}),
    "solve with extra field": (b"S", {**GOOD_SOLVE, "bonus": 1}),
    "negative cell": (b"S", {**GOOD_SOLVE, "cell": -1}),
    "huge cell": (b"S", {**GOOD_SOLVE, "cell": 10**30}),
    "wall_ms infinite": (b"S", {**GOOD_SOLVE, "wall_ms": float("inf")}),
    "solver not text": (b"S", {**GOOD_SOLVE, "solver": {"x": 1}}),
    "final status timeout": (b"R", {**GOOD_FINAL, "status": "timeout"}),
    "final status unknown": (b"R", {**GOOD_FINAL, "status": "won"}),
    "final without status": (b"R", {"exit_code": 0}),
    "exit_code text": (b"R", {**GOOD_FINAL, "exit_code": "0"}),
    "exit_code bool": (b"R", {**GOOD_FINAL, "exit_code": True}),
    "error not a record": (b"R", {**GOOD_FINAL, "error": {"type": 1}}),
    "error a string": (b"R", {**GOOD_FINAL, "error": "boom"}),
    "prior errors text": (b"R", {**GOOD_FINAL, "prior_cell_errors": "x"}),
    "prior errors garbage": (b"R", {**GOOD_FINAL, "prior_cell_errors": [{"a": 1}]}),
    "cpu_s text": (b"R", {**GOOD_FINAL, "cpu_s": "fast"}),
    "cpu_s negative": (b"R", {**GOOD_FINAL, "cpu_s": -1}),
    "maxrss infinite": (b"R", {**GOOD_FINAL, "maxrss_kb": float("inf")}),
    "memory_error text": (b"R", {**GOOD_FINAL, "memory_error": "yes"}),
    "final with extra field": (b"R", {**GOOD_FINAL, "objective": 1700}),
}
# Raw channel contents that are not frames at all (or not JSON objects).
GARBAGE = {
    "deeply nested JSON": NONCE + b" R 200000\n" + b"[" * 200000,
    "a JSON list": frame(NONCE, b"R", b"[1, 2]"),
    "a JSON string": frame(NONCE, b"R", b'"ok"'),
    "an integer of 5000 digits": frame(
        NONCE, b"R", b'{"status": "ok", "exit_code": 1' + b"0" * 5000 + b"}"
    ),
    "invalid UTF-8": frame(NONCE, b"R", b'{"status": "\xff\xfe"}'),
    "negative length": NONCE + b" R -5\n{}",
    "wrong nonce": frame(b"f" * 32, b"R", json.dumps(GOOD_FINAL).encode()),
    "unknown kind": frame(NONCE, b"X", json.dumps(GOOD_FINAL).encode()),
    "header without newline": NONCE + b" R 2" + b" " * 100,
    "truncated body": NONCE + b" R 100\n{}",
}


def _encode(body: dict) -> bytes:
    return json.dumps(body).encode()  # NaN and Infinity as Python's json writes them


@pytest.mark.parametrize("name", sorted(FORGED))
def test_it_refuses_every_forged_frame_field(name):
    kind, body = FORGED[name]
    channel = frame(NONCE, kind, _encode(body))
    if kind == b"S":
        channel += frame(NONCE, b"R", _encode(GOOD_FINAL))
    solves, final, tampered = read_frames(channel, NONCE)
    assert tampered, name
    assert solves == [] and final is None


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_it_refuses_garbage_in_the_channel_without_raising(name):
    solves, final, tampered = read_frames(GARBAGE[name], NONCE)
    assert tampered and solves == [] and final is None


def test_it_accepts_the_frames_the_harness_writes():
    channel = frame(NONCE, b"S", _encode(GOOD_SOLVE)) + frame(NONCE, b"R", _encode(GOOD_FINAL))
    solves, final, tampered = read_frames(channel, NONCE)
    assert tampered == "" and solves == [GOOD_SOLVE] and final["status"] == "ok"


# A job can reach its own nonce (it lives in the harness's closures); this one writes a frame
# of its choosing with it and leaves without the harness's report.
FORGER = textwrap.dedent(
    """
    import os
    import solver_sandbox.hooks as hooks
    emit = hooks.STATE.emit.__closure__[0].cell_contents
    nonce = next(c.cell_contents for c in emit.__closure__
                 if isinstance(c.cell_contents, bytes) and len(c.cell_contents) == 32)
    body = {body!r}
    os.write(3, nonce + b" {kind} %d\\n" % len(body) + body)
    os._exit(0)
    """
)


FORGED_IN_JOB = (
    "unknown termination",
    "objective as text",
    "final status timeout",
    "error not a record",
    "cpu_s text",
)


@pytest.mark.parametrize("name", FORGED_IN_JOB)
def test_it_gives_harness_error_for_a_frame_forged_inside_the_job(pool, name):
    kind, body = FORGED[name]
    code = FORGER.format(body=_encode(body), kind=kind.decode())
    result = pool.run(code)
    assert result.status == Status.HARNESS_ERROR, (result.status, result.detail, result.stderr)
    assert "tampered" in result.detail
    assert result.objective is None
    assert_pool_healthy(pool)


def test_it_gives_harness_error_for_deeply_nested_json_forged_inside_the_job(pool):
    code = FORGER.format(body=b"[" * 100000, kind="R")
    result = pool.run(code)
    assert result.status == Status.HARNESS_ERROR
    assert "tampered" in result.detail
    assert_pool_healthy(pool)


def test_it_kills_a_flood_on_the_result_channel_within_the_timeout(pool):
    result = pool.run(
        "import os\nchunk = b'x' * 65536\nwhile True:\n    os.write(3, chunk)",
        limits=Limits(timeout_s=60),
    )
    assert result.status == Status.HARNESS_ERROR
    assert "flooded" in result.detail
    assert result.wall_ms < 30_000  # killed at the cap, not drained until the deadline
    assert_pool_healthy(pool)


def test_it_routes_a_pathological_source_without_raising():
    assert route("not " * 20000) == "pyomo"
    assert route("x = " + "(" * 100000) == "pyomo"
    assert route("import scipy\n" + "not " * 20000) == "scipy"  # a text scan decides instead
    assert route("import pulp\n" + "x = 1\n" * 300000) == "scipy"


def test_it_gives_a_clean_error_for_not_repeated_twenty_thousand_times(pool):
    result = pool.run("not " * 20000)
    assert result.status == Status.ERROR
    assert result.error["type"] == "SyntaxError"
    assert "too deeply nested" in result.error["message"]
    assert_pool_healthy(pool)
