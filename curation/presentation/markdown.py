"""Rendering untrusted model output: Markdown (with maths left alone) through an allow-list
sanitizer, code through Pygments (which escapes). Nothing a model writes reaches a page
unsanitized.

Maths: markdown-it-py with mdit-py-plugins parses ``$…$``, ``$$…$$``, ``\\(…\\)`` and
``\\[…\\]`` before emphasis and backslash escapes can touch them, so ``x_1`` and ``\\leq``
survive. Each formula leaves here as escaped TeX text in ``<span class="math-inline">`` or
``<div class="math-display">``; the vendored KaTeX (``static/js/maths.js``) typesets it in the
browser from the element's text, with ``trust`` off, so a formula can never become markup.
"""

from __future__ import annotations

import re
from functools import lru_cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.texmath import texmath_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a",
    "span", "sup", "sub", "del", "s", "div",
}  # fmt: skip
# Table cells keep markdown-it's alignment (style limited to text-align below).
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "td": {"style"}, "th": {"style"}}
# Only the maths and chat markers may carry a class (ammonia wants it here, not in the
# attributes). Raw HTML from a model is escaped (html=False), so only our renderer emits them.
ALLOWED_CLASSES = {"span": {"math-inline", "math-display", "chat-marker"}, "div": {"math-display"}}
_FORMATTER = HtmlFormatter(nowrap=True)
_LEXER = PythonLexer()


def _inline_display_brackets(state: StateInline, silent: bool) -> bool:
    """``\\[ … \\]`` inside a paragraph (models write display maths mid-sentence); the
    texmath plugin only takes it as a block of its own."""
    if not state.src.startswith("\\[", state.pos):
        return False
    end = state.src.find("\\]", state.pos + 2)
    if end < 0:
        return False
    if not silent:
        token = state.push("math_inline_double", "math", 0)
        token.content = state.src[state.pos + 2 : end]
        token.markup = "\\["
    state.pos = end + 2
    return True


def _math(kind: str):
    """Inline, display inside a paragraph (a span, so the paragraph stays valid), or block."""

    def render(self, tokens, idx, options, env) -> str:
        tex = escapeHtml(tokens[idx].content.strip())
        if kind == "block":
            return f'<div class="math-display">{tex}</div>\n'
        return f'<span class="math-{kind}">{tex}</span>'

    return render


# The chat format's own tokens in a step's prose (the forced think prefix, the end-of-turn token a
# text route stores so that SFT teaches the model to stop) show as labelled markers, not as raw
# tags. Only prose is touched: code spans, fences, maths and link attributes keep them as text.
CHAT_MARKERS = {
    "<think>": "thinking",
    "</think>": "end of thinking",
    "<|im_end|>": "end of turn",
    "<|endoftext|>": "end of text",
    "<|eot_id|>": "end of turn",
}
_MARKER_RE = re.compile("(" + "|".join(re.escape(k) for k in CHAT_MARKERS) + ")")


def _chat_markers(state) -> None:
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children = []
        for token in block.children:
            if token.type != "text" or not _MARKER_RE.search(token.content):
                children.append(token)
                continue
            for i, piece in enumerate(_MARKER_RE.split(token.content)):
                if not piece:
                    continue
                part = Token("chat_marker" if i % 2 else "text", "", 0)
                part.content = piece
                children.append(part)
        block.children = children


def _render_chat_marker(self, tokens, idx, options, env) -> str:
    return f'<span class="chat-marker">{escapeHtml(CHAT_MARKERS[tokens[idx].content])}</span>'


def _parser() -> MarkdownIt:
    # html=False: raw HTML a model writes is shown as text, never parsed as markup.
    md = (
        MarkdownIt("commonmark", {"html": False})
        .enable(["table", "strikethrough"])
        .use(texmath_plugin, delimiters="brackets")
        .use(dollarmath_plugin, allow_space=False, allow_digits=False, double_inline=True)
    )
    md.inline.ruler.before("escape", "inline_display_brackets", _inline_display_brackets)
    md.core.ruler.after("inline", "chat_markers", _chat_markers)
    md.add_render_rule("chat_marker", _render_chat_marker)
    md.add_render_rule("math_inline", _math("inline"))
    md.add_render_rule("math_inline_double", _math("display"))
    for name in ("math_block", "math_block_label", "math_block_eqno"):
        md.add_render_rule(name, _math("block"))
    return md


_MD = _parser()


def render_markdown(text: str) -> SafeString:
    """Markdown → HTML with only harmless tags and attributes, http(s)/mailto links only,
    maths marked for KaTeX."""
    return mark_safe(_markdown_html(text or ""))  # noqa: S308 - sanitized in _markdown_html


# Rendering is pure and costs ~1 ms a step; reviewers reopen the same steps all day (and a
# relabel re-renders one card), so a process-wide cache keyed by the text pays off.
@lru_cache(maxsize=8192)
def _markdown_html(text: str) -> str:
    html = _MD.render(text)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes=ALLOWED_CLASSES,
        filter_style_properties={"text-align"},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


# Inserted text (a hint) is marked inside a rendered step: private-use characters stand at the
# span's ends through Markdown and the sanitizer (they are plain text to both), then become
# <mark> tags, and a second sanitizer pass fixes any nesting they cross (a hint over two
# paragraphs). A model's own private-use characters are replaced first, so they mark nothing.
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_MARK_TAGS = {_MARK_OPEN: '<mark class="hint-text">', _MARK_CLOSE: "</mark>"}


_BLOCK_OR_SENTINEL = re.compile(
    f"[{_MARK_OPEN}{_MARK_CLOSE}]|</?(?:p|li|ul|ol|h[1-6]|blockquote|pre|table|thead|tbody|tr|td|th|div)\\b[^>]*>"
)


def _marks_per_block(html: str) -> str:
    """The sentinels as <mark> tags, closed before and reopened after each block tag they
    span, so a hint over two paragraphs is marked in both."""
    out, pos, inside = [], 0, False
    for match in _BLOCK_OR_SENTINEL.finditer(html):
        out.append(html[pos : match.start()])
        token = match.group()
        if token in _MARK_TAGS:
            inside = token == _MARK_OPEN
            out.append(_MARK_TAGS[token])
        elif inside:
            out += [_MARK_TAGS[_MARK_CLOSE], token, _MARK_TAGS[_MARK_OPEN]]
        else:
            out.append(token)
        pos = match.end()
    out.append(html[pos:])
    return _EMPTY_MARK.sub(r"\1", "".join(out))


_EMPTY_MARK = re.compile(r'<mark class="hint-text">(\s*)</mark>')


def render_markdown_marked(text: str, spans) -> SafeString:
    """``render_markdown`` with each (start, end) character span of ``text`` (sorted, not
    overlapping) wrapped in ``<mark class="hint-text">``."""
    text = (text or "").replace(_MARK_OPEN, "\ufffd").replace(_MARK_CLOSE, "\ufffd")
    spans = sorted((max(0, a), min(len(text), b)) for a, b in spans or () if a < b)
    if not spans:
        return render_markdown(text)
    pieces, pos = [], 0
    for start, end in spans:
        if start < pos:
            continue  # overlapping: keep the first
        pieces += [text[pos:start], _MARK_OPEN, text[start:end], _MARK_CLOSE]
        pos = end
    pieces.append(text[pos:])
    html = _marks_per_block(_markdown_html("".join(pieces)))
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS | {"mark"},
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes={**ALLOWED_CLASSES, "mark": {"hint-text"}},
        filter_style_properties={"text-align"},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(cleaned)  # noqa: S308 - sanitized just above


def render_code(code: str) -> SafeString:
    """Python source as highlighted HTML (Pygments escapes every character it emits)."""
    return mark_safe(_code_html(code or ""))  # noqa: S308 - escaped by Pygments


@lru_cache(maxsize=8192)
def _code_html(code: str) -> str:
    return highlight(code, _LEXER, _FORMATTER)
