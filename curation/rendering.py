"""Rendering untrusted model output: Markdown through an allow-list sanitizer, code through
Pygments (which escapes). Nothing a model writes reaches a page unsanitized."""

from __future__ import annotations

from functools import lru_cache

import markdown as md
import nh3
from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a",
    "span", "sup", "sub", "del",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "td": {"align"}, "th": {"align"}}
_FORMATTER = HtmlFormatter(nowrap=True)
_LEXER = PythonLexer()


def render_markdown(text: str) -> SafeString:
    """Markdown → HTML with only harmless tags and attributes, http(s)/mailto links only."""
    return mark_safe(_markdown_html(text or ""))  # noqa: S308 - sanitized in _markdown_html


# Rendering is pure and costs ~1 ms a step; reviewers reopen the same steps all day (and a
# relabel re-renders one card), so a process-wide cache keyed by the text pays off.
@lru_cache(maxsize=8192)
def _markdown_html(text: str) -> str:
    html = md.markdown(text, extensions=["fenced_code", "tables", "sane_lists"])
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return clean


def render_code(code: str) -> SafeString:
    """Python source as highlighted HTML (Pygments escapes every character it emits)."""
    return mark_safe(_code_html(code or ""))  # noqa: S308 - escaped by Pygments


@lru_cache(maxsize=8192)
def _code_html(code: str) -> str:
    return highlight(code, _LEXER, _FORMATTER)
