"""Model output is untrusted: whatever it contains renders inert."""

from __future__ import annotations

import pytest

from curation.rendering import render_code, render_markdown

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


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_from_a_model_renders_inert(text):
    html = str(render_markdown(text)).lower()
    assert "<script" not in html
    assert "onerror" not in html and "onmouseover" not in html
    assert "javascript:" not in html
    assert "<iframe" not in html and "<style" not in html
    assert "data:text/html" not in html


def test_markdown_keeps_ordinary_formatting():
    html = str(render_markdown("**Maximize** profit:\n\n- x ≥ 0\n- [docs](https://pyomo.org)"))
    assert "<strong>Maximize</strong>" in html
    assert "<li>x ≥ 0</li>" in html
    assert 'href="https://pyomo.org"' in html and 'rel="noopener noreferrer nofollow"' in html


def test_code_is_escaped_by_the_highlighter():
    html = str(render_code('print("</pre><script>alert(1)</script>")'))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
