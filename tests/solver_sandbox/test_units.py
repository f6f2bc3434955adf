"""The pure parts: output capture, objective parsing and decision, routing, result framing."""

from __future__ import annotations

import pytest

from solver_sandbox.capture import HeadTail
from solver_sandbox.objective import decide, parse_printed_objective
from solver_sandbox.pool import route
from solver_sandbox.protocol import FrameError, frame, parse_frames


def test_it_keeps_head_and_tail_and_counts_the_middle():
    buf = HeadTail(head=4, tail=4)
    for chunk in (b"abcdef", b"ghij" * 10, b"WXYZ"):
        buf.feed(chunk)
    assert buf.raw() == (b"abcd", b"WXYZ")
    assert buf.dropped == buf.total - 8
    assert buf.text() == f"abcd\n[... {buf.dropped} bytes truncated ...]\nWXYZ"


def test_it_keeps_small_output_whole_and_strips_ansi():
    buf = HeadTail(head=100, tail=100)
    buf.feed(b"\x1b[31mred\x1b[0m \xff\n")
    assert buf.dropped == 0
    assert buf.text() == "red \ufffd\n"


@pytest.mark.parametrize(
    "stdout,value",
    [
        (b"OBJECTIVE_VALUE: 1160\n", 1160.0),
        (b"OBJECTIVE_VALUE: 1\nnoise\nOBJECTIVE_VALUE: -2.5e3\n", -2500.0),
        (b"  OBJECTIVE_VALUE:   .5  \r\n", 0.5),
        (b"OBJECTIVE_VALUE: inf\n", float("inf")),
        (b"The OBJECTIVE_VALUE: 3 is\n", None),
        (b"OBJECTIVE_VALUE: 12 dollars\n", None),
        (b"", None),
    ],
)
def test_it_parses_the_last_printed_objective_line(stdout, value):
    assert parse_printed_objective(stdout) == value


def test_it_decides_the_objective_from_the_last_optimal_solve():
    solves = [
        {"termination": "optimal", "objective": 10.0},
        {"termination": "optimal", "objective": 12.0},
        {"termination": "infeasible", "objective": None},
    ]
    assert decide(solves, 12.0000001) == (12.0, "optimal", "consistent")
    assert decide(solves, 10.0) == (12.0, "optimal", "mismatch")
    assert decide(solves, None) == (12.0, "optimal", "unprinted")
    assert decide(solves[2:], 5.0) == (None, "infeasible", "not_optimal")
    assert decide([], 1700.0) == (None, None, "no_solve")


@pytest.mark.parametrize(
    "code,profile",
    [
        ("import pyomo.environ as pyo", "pyomo"),
        ("from scipy.optimize import linprog", "scipy"),
        ("import pulp", "scipy"),
        ("def f(:", "pyomo"),
        ("import numpy as np", "pyomo"),
    ],
)
def test_it_routes_code_to_a_profile_by_its_imports(code, profile):
    assert route(code) == profile


def test_it_routes_by_prior_cells_too():
    assert route("x = 1", ["import scipy"]) == "scipy"


def test_it_parses_frames_and_rejects_anything_foreign():
    nonce = b"abc123"
    data = frame(nonce, b"S", b'{"a":1}') + frame(nonce, b"R", b'{"status":"ok"}')
    assert parse_frames(data, nonce) == [(b"S", {"a": 1}), (b"R", {"status": "ok"})]
    for bad in (b"garbage" + data, data + b"x", frame(b"other", b"R", b"{}"), data[:-2]):
        with pytest.raises(FrameError):
            parse_frames(bad, nonce)
