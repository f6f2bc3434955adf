"""Model output is untrusted: whatever it contains renders inert."""

from __future__ import annotations

import pytest

from curation.presentation.markdown import render_code, render_markdown

HOSTILE = [
    "<script>alert('x')</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">link</a>',
    '<div onmouseover="alert(1)">hover</div>',
    "<iframe src='https://evil.example'></iframe>",
    "<svg><script>alert(1)</script></svg>",
    "<style>body{display:none}</style>",
    '<a href="data:text/html;base64,PHNjcmlwdD4=">data</a>',
]


def _elements(html: str) -> list[tuple[str, dict]]:
    """Every element a browser would build from this HTML: (tag, attributes)."""
    from html.parser import HTMLParser

    found: list[tuple[str, dict]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, {k: v or "" for k, v in attrs}))

    Collector().feed(html)
    return found


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_from_a_model_renders_inert(text):
    # Raw HTML from a model is shown as text (escaped), never built into elements.
    elements = _elements(str(render_markdown(text)))
    assert not [tag for tag, _ in elements if tag in {"script", "iframe", "style", "img", "svg"}]
    assert not [a for _, attrs in elements for a in attrs if a.startswith("on")]
    hrefs = [attrs.get("href", "").lower() for _, attrs in elements]
    assert not [h for h in hrefs if h.startswith(("javascript:", "data:"))]


def test_markdown_keeps_ordinary_formatting():
    html = str(render_markdown("**Maximize** profit:\n\n- x ≥ 0\n- [docs](https://pyomo.org)"))
    assert "<strong>Maximize</strong>" in html
    assert "<li>x ≥ 0</li>" in html
    assert 'href="https://pyomo.org"' in html and 'rel="noopener noreferrer nofollow"' in html


def test_code_is_escaped_by_the_highlighter():
    html = str(render_code('print("</pre><script>alert(1)</script>")'))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_inline_and_display_maths_are_left_alone_for_the_typesetter():
    html = str(render_markdown("Constraint $x_1 + x_2 \\leq 10$ and \\[ \\sum_i c_i x_i \\]."))
    assert '<span class="math-inline">x_1 + x_2 \\leq 10</span>' in html
    assert '<span class="math-display">\\sum_i c_i x_i</span>' in html
    assert "<em>" not in html  # the underscores did not become emphasis


def test_every_maths_delimiter_a_model_uses_is_recognised():
    html = str(render_markdown("\\( a_b * c_d * e \\) and $$y_1$$\n\n\\[\n\\max_x c^T x\n\\]"))
    assert '<span class="math-inline">a_b * c_d * e</span>' in html
    assert '<span class="math-display">y_1</span>' in html
    assert '<div class="math-display">\\max_x c^T x</div>' in html
    assert "<em>" not in html


def test_prices_are_not_mistaken_for_maths():
    html = str(render_markdown("Tables sell for $5 and chairs for $10."))
    assert "math" not in html and "$5 and chairs for $10" in html


@pytest.mark.parametrize(
    "text",
    ["$<script>alert(1)</script>$", "\\[ <img src=x onerror=alert(1)> \\]",
     "\\( \\href{javascript:alert(1)}{x} \\)", '<span class="math-inline" onclick="x">h</span>'],
)  # fmt: skip
def test_script_inside_maths_stays_inert_text(text):
    elements = _elements(str(render_markdown(text)))
    assert {tag for tag, _ in elements} <= {"p", "span", "div"}
    assert all(set(attrs) <= {"class"} for _, attrs in elements)


def test_only_the_maths_markers_keep_a_class():
    html = str(render_markdown("$x$"))
    assert html.count('class="') == 1


def test_the_chat_formats_tokens_show_as_labelled_markers():
    html = str(render_markdown("<think> Let x be tables.\n\nSo \\boxed{4100}.</think><|im_end|>"))
    markers = [attrs for tag, attrs in _elements(html) if attrs.get("class") == "chat-marker"]
    assert len(markers) == 3 and "&lt;think&gt;" not in html and "im_end" not in html
    assert ">thinking<" in html and ">end of thinking<" in html and ">end of turn<" in html


@pytest.mark.parametrize(
    "text",
    [
        "Run `print('<think>')` first.",
        "```\n<think>\n```",
        "$a <think> b$",
        '[click](https://example.com "<think>")',
    ],
)
def test_chat_markers_leave_code_maths_and_attributes_alone(text):
    # A marker inside an attribute would break out of it; inside code or maths it would change
    # what the model wrote.
    html = str(render_markdown(text))
    assert "chat-marker" not in html and "&lt;think&gt;" in html
    if "href" in html:
        assert 'rel="noopener noreferrer nofollow"' in html
