from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def number(value, places: int = 6) -> str:
    """A float without trailing zeros: 5.2, 1160, 0.333333 (at most ``places`` decimals)."""
    if value is None:
        return ""
    try:
        text = f"{float(value):,.{int(places)}f}"
    except (TypeError, ValueError):
        return str(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


@register.filter
def markdown(value: str):
    from ..presentation.markdown import render_markdown

    return render_markdown(value)


@register.filter
def markdown_marked(value: str, spans):
    """Markdown with the (start, end) spans of ``value`` highlighted (an inserted hint)."""
    from ..presentation.markdown import render_markdown_marked

    return render_markdown_marked(value, spans)


@register.filter
def with_selected(options, value):
    """The prebuilt <option> list (``views.presenters.flaw_options``) with the option of
    ``value`` (a flaw type's pk) selected: the step's menu shows its current label."""
    from django.utils.safestring import mark_safe

    if value in (None, ""):
        return options
    needle = f'<option value="{int(value)}" '
    return mark_safe(str(options).replace(needle, needle + "selected ", 1))  # noqa: S308


@register.filter
def python_code(value: str):
    from ..presentation.markdown import render_code

    return render_code(value)


@register.filter
def percent(value, places: int = 2) -> str:
    if value is None:
        return "–"
    return f"{100 * float(value):.{int(places)}f}%"


@register.filter
def seconds(value) -> str:
    """A duration in seconds as people say it: 45 s, 3 min 20 s, 2 h 05 min."""
    if value is None:
        return "–"
    total = max(0, round(float(value)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
