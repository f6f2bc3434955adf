"""The trajectory page says what the engine could not guarantee and what the solver found:
route warnings (a text-only server's re-tokenization), the solver's last optimum beside the
stated answer, and a trajectory stuck on failing code."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_page_shows_route_warnings_the_solver_s_optimum_and_repetition(
    client_for, reviewer, make_trajectory
):
    t = make_trajectory(
        final_answer="", final_value=None, answer_source="", is_correct=False,
        sandbox_objective=4100.0, finish_reason="repetition",
        warnings=[{"kind": "retokenized", "first_difference": 17, "stored": 900, "server": 901,
                   "at_token": 120},
                  {"kind": "<script>alert(1)</script>"}],
    )  # fmt: skip
    html = client_for(reviewer).get(t.get_absolute_url()).content.decode()
    assert "2 warnings" in html
    assert "first difference at token 17: 900 stored, 901 on the server" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "solver's last optimum: 4,100" in html and "(credited)" not in html
    assert "stuck on failing code" in html


def test_a_credited_sandbox_answer_says_so(client_for, reviewer, make_trajectory):
    t = make_trajectory(final_answer="4100", answer_source="sandbox", sandbox_objective=4100.0)
    html = client_for(reviewer).get(t.get_absolute_url()).content.decode()
    assert "solver's last optimum: 4,100 (credited)" in html and "route-warnings" not in html
