"""An inserted hint is highlighted inside its step: its span of the reasoning is wrapped in
<mark class="hint-text"> after Markdown and sanitizing, and nothing a model writes (markup, the
private-use characters the marks travel as) can add or move a mark."""

from __future__ import annotations

from curation.presentation.markdown import render_markdown_marked
from curation.views.presenters import step_views
from tests.curation.conftest import step
from tests.curation.test_views_trajectories import parse_elements


def _marked(text: str, part: str) -> str:
    start = text.index(part)
    return str(render_markdown_marked(text, [(start, start + len(part))]))


def test_the_hint_span_is_marked_and_the_rest_is_not():
    html = _marked(
        "The model said **x**. Wait, check the units. Then it went on.", "Wait, check the units."
    )
    assert '<mark class="hint-text">Wait, check the units.</mark>' in html
    assert "<strong>x</strong>" in html
    assert html.count("<mark") == 1


def test_a_hint_over_two_paragraphs_is_marked_in_each():
    html = _marked(
        "Before.\n\nWait, first part.\n\nSecond part. After.", "first part.\n\nSecond part."
    )
    assert '<p>Wait, <mark class="hint-text">first part.</mark></p>' in html
    assert '<p><mark class="hint-text">Second part.</mark> After.</p>' in html


def test_model_text_inside_and_around_the_hint_stays_inert():
    text = "<mark onclick=alert(1)>\ue000fake\ue001</mark> Hint <script>alert(2)</script> end"
    html = _marked(text, "Hint <script>alert(2)</script>")
    elements = parse_elements(html)
    assert [tag for tag, _ in elements] == ["p", "mark"]
    assert elements[1][1] == {"class": "hint-text"}
    assert html.count("<mark") == 1  # ours: the model's markup and sentinels mark nothing
    assert '<mark class="hint-text">Hint &lt;script&gt;alert(2)&lt;/script&gt;</mark>' in html


def test_steps_holding_a_hint_find_its_span():
    steps = [step(0, "No hint here. Wait, use the solver."),
             step(1, "Cut here. Wait, use the solver.\nThen more.", has_hint=True)]  # fmt: skip
    views = step_views(steps, {}, ["Wait, use the solver.\n```python\nprint(1)\n```"])
    assert views[0].hint_spans == []  # the step holds no hint
    start = steps[1]["reasoning"].index("Wait")
    assert views[1].hint_spans == [(start, start + len("Wait, use the solver."))]
