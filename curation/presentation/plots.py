"""Server-side SVG charts: no JavaScript library, so the pages work offline.

Every function returns a ``SafeString`` holding one complete ``<svg>`` with ``role="img"``, an
``aria-label`` and a ``<title>``, sized by its ``viewBox`` so it scales to the width of its
container (``width="100%"``). Text and lines use ``currentColor``, so a chart follows the page's
text colour (dark mode included); data use a small colour-blind-safe palette (Okabe–Ito).

Every piece of text, titles, category and model names included, goes through
``django.utils.html.escape``: those names can come from users or from a model's output. Numbers
are formatted here and contain no markup. Empty data give a small "no data yet" chart, never an
exception; inconsistent arguments (a values list longer than its categories) raise ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999", "#332288")
REFERENCE_COLOUR = "#D55E00"
WIDTH = 640
FONT = 13
SMALL = 11
CHAR_W = 8.0  # rough width of one character at FONT (DejaVu Sans is wide), for layout only
TITLE_H = 34
EMPTY_TEXT = "no data yet"


# --------------------------------------------------------------------------------------------
# helpers


def _finite(value: object) -> float | None:
    """The value as a float, or None for None, NaN, infinities and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _c(value: float) -> str:
    """A coordinate, one decimal at most."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def fmt_number(value: float | None) -> str:
    """A value label: thousands separators, about three significant digits, no float noise."""
    value = _finite(value)
    if value is None:
        return "n/a"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    text = (
        f"{value:.1f}" if magnitude >= 10 else f"{value:.2f}" if magnitude >= 1 else f"{value:.3g}"
    )
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def nice_ticks(lo: float, hi: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.5 or 1.0
        lo, hi = (lo - pad, hi + pad) if lo != 0 else (0.0, 1.0)
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    if integer:
        step = max(1.0, math.ceil(step))
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    n = round((end - start) / step)
    return [round(start + i * step, 10) for i in range(n + 1)]


def _tick_text(value: float, ticks: Sequence[float], unit: str = "") -> str:
    """A tick label with just enough decimals for the step (0.25 → two, 2.5 → one)."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = next((d for d in range(10) if abs(round(step, d) - step) < 1e-9 * step), 10)
    return escape(f"{value:,.{decimals}f}{unit}")


def _text(content: object, x: float, y: float, *, max_chars: int = 0, **attrs: object) -> str:
    """An escaped ``<text>``; a shortened label keeps its full text in a tooltip."""
    full = str(content)
    short = full
    if max_chars and len(full) > max_chars:
        short = full[: max(1, max_chars - 1)] + "…"
    attributes = "".join(
        f' {k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in attrs.items()
    )
    tip = f"<title>{escape(full)}</title>" if short != full else ""
    return f'<text x="{_c(x)}" y="{_c(y)}"{attributes}>{tip}{escape(short)}</text>'


def _svg(title: str, width: float, height: float, body: Sequence[str]) -> SafeString:
    label = escape(title)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_c(width)} {_c(height)}" '
        f'width="100%" role="img" aria-label="{label}" class="chart" '
        f'font-family="system-ui, -apple-system, \'Segoe UI\', sans-serif" font-size="{FONT}" '
        f'fill="currentColor" style="max-width: 100%; height: auto">'
    )
    heading = _text(title, width / 2, 22, text_anchor="middle", font_size=15, font_weight=600)
    # Safe: every string that reaches this markup was escaped by _text, _tick_text or above.
    return mark_safe("".join([head, f"<title>{label}</title>", heading, *body, "</svg>"]))  # noqa: S308


def empty_chart(title: str, message: str = EMPTY_TEXT) -> SafeString:
    """A small chart that says there is nothing to show yet."""
    note = _text(message, WIDTH / 2, 74, text_anchor="middle", fill_opacity=0.6, class_="empty")
    frame = (
        f'<rect x="1" y="40" width="{WIDTH - 2}" height="58" rx="6" fill="none" '
        'stroke="currentColor" stroke-opacity="0.2" stroke-dasharray="4 4"/>'
    )
    return _svg(title, WIDTH, 110, [frame, note])


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _legend(names: Sequence[str], left: float, top: float, width: float) -> tuple[list[str], float]:
    """Swatches and names, wrapped to ``width``; returns the parts and the height used."""
    parts, x, y = [], left, top
    for i, name in enumerate(names):
        label = str(name) if len(str(name)) <= 32 else str(name)[:31] + "…"
        item_w = 18 + len(label) * CHAR_W * 0.9 + 14
        if x > left and x + item_w > left + width:
            x, y = left, y + 18
        parts.append(f'<rect x="{_c(x)}" y="{_c(y)}" width="11" height="11" fill="{_colour(i)}"/>')
        parts.append(_text(name, x + 16, y + 10, max_chars=32, font_size=SMALL))
        x += item_w
    return parts, (y - top) + 20 if names else 0


def _grid_y(ticks, y_of, left, right, unit="") -> list[str]:
    """Horizontal gridlines with labels on the left (a vertical value axis)."""
    parts = []
    for tick in ticks:
        y = y_of(tick)
        opacity = 0.45 if tick == 0 else 0.12
        parts.append(
            f'<line x1="{_c(left)}" x2="{_c(right)}" y1="{_c(y)}" y2="{_c(y)}" '
            f'stroke="currentColor" stroke-opacity="{opacity}"/>'
        )
        parts.append(
            f'<text x="{_c(left - 6)}" y="{_c(y + 4)}" text-anchor="end" font-size="{SMALL}" '
            f'fill-opacity="0.75">{_tick_text(tick, ticks, unit)}</text>'
        )
    return parts


def _grid_x(ticks, x_of, top, bottom, unit="") -> list[str]:
    """Vertical gridlines with labels below (a horizontal value axis)."""
    parts = []
    for tick in ticks:
        x = x_of(tick)
        opacity = 0.45 if tick == 0 else 0.12
        parts.append(
            f'<line x1="{_c(x)}" x2="{_c(x)}" y1="{_c(top)}" y2="{_c(bottom)}" '
            f'stroke="currentColor" stroke-opacity="{opacity}"/>'
        )
        parts.append(
            f'<text x="{_c(x)}" y="{_c(bottom + 15)}" text-anchor="middle" font-size="{SMALL}" '
            f'fill-opacity="0.75">{_tick_text(tick, ticks, unit)}</text>'
        )
    return parts


def _reference_line(x1, y1, x2, y2, label: str) -> list[str]:
    line = (
        f'<line class="reference" x1="{_c(x1)}" y1="{_c(y1)}" x2="{_c(x2)}" y2="{_c(y2)}" '
        f'stroke="{REFERENCE_COLOUR}" stroke-width="1.5" stroke-dasharray="5 4"/>'
    )
    anchor = "middle" if x1 == x2 else "end"
    lx, ly = (x1, y1 - 5) if x1 == x2 else (x2, y2 - 5)
    text = _text(label, lx, ly, text_anchor=anchor, font_size=SMALL, fill=REFERENCE_COLOUR)
    return [line, text]


# --------------------------------------------------------------------------------------------
# bar chart


def bar_chart(
    categories: Sequence[object],
    values: Sequence[float | None],
    *,
    title: str,
    unit: str = "",
    reference: float | None = None,
    reference_label: str = "reference",
) -> SafeString:
    """Horizontal bars, one per category, with the value at the end of each bar.

    Values are shown as given with ``unit`` appended (pass percentages with ``unit="%"``);
    None or NaN draws no bar and "n/a". ``reference`` draws a dashed vertical line, labelled
    ``reference_label`` and its value (e.g. the paper's 2.6% token modification ratio).
    """
    if len(categories) != len(values):
        raise ValueError("categories and values must have the same length")
    clean = [_finite(v) for v in values]
    known = [v for v in clean if v is not None]
    if not known:
        return empty_chart(title)
    ref = _finite(reference)
    extent = [0.0, *known] + ([ref] if ref is not None else [])
    ticks = nice_ticks(min(extent), max(extent))
    max_chars = min(30, max(len(str(c)) for c in categories))
    left = 14 + max_chars * CHAR_W
    right = WIDTH - 64
    top = TITLE_H + (18 if ref is not None else 6)
    row = 26
    bottom = top + row * len(categories)
    span = ticks[-1] - ticks[0]

    def x_of(v: float) -> float:
        return left + (v - ticks[0]) / span * (right - left)

    body = _grid_x(ticks, x_of, top, bottom, unit)
    for i, (category, value) in enumerate(zip(categories, clean, strict=True)):
        y = top + i * row
        body.append(
            _text(category, left - 8, y + 17, max_chars=30, text_anchor="end", class_="category")
        )
        if value is None:
            body.append(_text("n/a", x_of(0) + 4, y + 17, font_size=SMALL, fill_opacity=0.6))
            continue
        x0, x1 = sorted((x_of(0), x_of(value)))
        body.append(
            f'<rect x="{_c(x0)}" y="{_c(y + 4)}" width="{_c(max(x1 - x0, 0.5))}" height="18" '
            f'fill="{PALETTE[0]}"><title>{escape(str(category))}: '
            f"{escape(fmt_number(value) + unit)}</title></rect>"
        )
        body.append(_text(fmt_number(value) + unit, x1 + 4, y + 17, font_size=SMALL))
    if ref is not None:
        label = f"{reference_label} {fmt_number(ref)}{unit}"
        body += _reference_line(x_of(ref), top - 2, x_of(ref), bottom, label)
    return _svg(title, WIDTH, bottom + 26, body)


# --------------------------------------------------------------------------------------------
# grouped and stacked bars


def grouped_bar_chart(
    groups: Sequence[object],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    stacked: bool = False,
    unit: str = "",
) -> SafeString:
    """Vertical bars per group (e.g. benchmark), one colour per series (e.g. flaw type).

    ``series`` maps a name to values aligned with ``groups``; None counts as 0 when stacked and
    draws nothing otherwise. ``stacked=True`` piles the series (negative values are drawn as 0,
    stacks are for counts and shares) and prints each stack's total above it.
    """
    for name, values in series.items():
        if len(values) != len(groups):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(groups)} groups")
    names = list(series)
    table = [[_finite(v) for v in series[name]] for name in names]
    if not groups or not any(v is not None for row in table for v in row):
        return empty_chart(title)

    band = max(60.0, 460.0 / len(groups)) if not stacked else max(48.0, 460.0 / len(groups))
    if not stacked:
        band = max(band, 14.0 * len(names) / 0.8)
    left = 64.0
    width = max(WIDTH, left + band * len(groups) + 16)
    legend, legend_h = _legend(names, left, TITLE_H, width - left - 16)
    top = TITLE_H + legend_h + 12
    plot_h = 240.0
    bottom = top + plot_h

    if stacked:
        totals = [sum(max(row[g] or 0, 0) for row in table) for g in range(len(groups))]
        ticks = nice_ticks(0, max(totals), integer=_all_integers(table))
    else:
        known = [v for row in table for v in row if v is not None]
        ticks = nice_ticks(min(0.0, *known), max(0.0, *known), integer=_all_integers(table))
    span = ticks[-1] - ticks[0]

    def y_of(v: float) -> float:
        return bottom - (v - ticks[0]) / span * plot_h

    body = [*legend, *_grid_y(ticks, y_of, left, left + band * len(groups), unit)]
    for g, group in enumerate(groups):
        x = left + g * band
        body.append(
            _text(
                group,
                x + band / 2,
                bottom + 16,
                max_chars=int(band / 6.6) - 1,
                text_anchor="middle",
                font_size=SMALL,
            )
        )
        if stacked:
            body += _stack(table, names, g, x + band * 0.2, band * 0.6, y_of, unit)
        else:
            body += _bars(table, names, g, x + band * 0.1, band * 0.8, y_of, unit)
    return _svg(title, width, bottom + 30, body)


def _all_integers(table: list[list[float | None]]) -> bool:
    """Counts get integer ticks: a "2.5 flaws" gridline reads as noise."""
    return all(v is None or float(v).is_integer() for row in table for v in row)


def _bar(x, y_top, w, h, colour, tip) -> str:
    return (
        f'<rect x="{_c(x)}" y="{_c(y_top)}" width="{_c(w)}" height="{_c(max(h, 0))}" '
        f'fill="{colour}"><title>{escape(tip)}</title></rect>'
    )


def _bars(table, names, g, x, inner_w, y_of, unit) -> list[str]:
    parts, bar_w = [], inner_w / len(names)
    for s, name in enumerate(names):
        value = table[s][g]
        if value is None:
            continue
        y0, y1 = sorted((y_of(0), y_of(value)))
        bx = x + s * bar_w
        parts.append(
            _bar(bx, y0, bar_w - 1, y1 - y0, _colour(s), f"{name}: {fmt_number(value)}{unit}")
        )
        if bar_w >= 16:
            parts.append(
                _text(
                    fmt_number(value),
                    bx + bar_w / 2,
                    y0 - 3,
                    text_anchor="middle",
                    font_size=10 if bar_w < 26 else SMALL,
                )
            )
    return parts


def _stack(table, names, g, x, bar_w, y_of, unit) -> list[str]:
    parts, base = [], 0.0
    for s, name in enumerate(names):
        value = max(table[s][g] or 0, 0)
        if value == 0:
            continue
        y_top, y_bottom = y_of(base + value), y_of(base)
        tip = f"{name}: {fmt_number(value)}{unit}"
        parts.append(_bar(x, y_top, bar_w, y_bottom - y_top, _colour(s), tip))
        if y_bottom - y_top >= 14 and bar_w >= 24:
            parts.append(
                _text(
                    fmt_number(value),
                    x + bar_w / 2,
                    (y_top + y_bottom) / 2 + 4,
                    text_anchor="middle",
                    font_size=10,
                    fill="#ffffff",
                )
            )
        base += value
    parts.append(
        _text(
            fmt_number(base) + unit,
            x + bar_w / 2,
            y_of(base) - 4,
            text_anchor="middle",
            font_size=SMALL,
        )
    )
    return parts


# --------------------------------------------------------------------------------------------
# heatmap


def heatmap(
    matrix: Sequence[Sequence[float | None]],
    row_labels: Sequence[object],
    col_labels: Sequence[object],
    *,
    title: str,
    row_title: str = "",
    col_title: str = "",
) -> SafeString:
    """A grid of cells shaded by value, the number in each cell (a confusion matrix).

    ``matrix[i][j]`` belongs to ``row_labels[i]`` and ``col_labels[j]``. ``row_title`` and
    ``col_title`` name the axes (e.g. "human" and "model"). Cells on the diagonal of a square
    matrix with equal row and column labels get an outline (agreement).
    """
    if len(matrix) != len(row_labels) or any(len(r) != len(col_labels) for r in matrix):
        raise ValueError("matrix shape must match row_labels × col_labels")
    cells = [[_finite(v) for v in row] for row in matrix]
    known = [v for row in cells for v in row if v is not None]
    if not row_labels or not col_labels or not known:
        return empty_chart(title)
    peak = max(max(abs(v) for v in known), 1e-12)
    cell = 46.0 if len(col_labels) <= 10 else 34.0
    row_chars = min(28, max(len(str(r)) for r in row_labels))
    col_chars = min(28, max(len(str(c)) for c in col_labels))
    left = 16 + row_chars * CHAR_W + (20 if row_title else 0)
    top = TITLE_H + (20 if col_title else 0) + col_chars * CHAR_W * 0.72 + 10
    # rotated column labels lean right, past the last column
    width = max(WIDTH, left + cell * len(col_labels) + col_chars * CHAR_W * 0.6 + 10)
    height = top + cell * len(row_labels) + 16
    diagonal = list(map(str, row_labels)) == list(map(str, col_labels))

    body = []
    if col_title:
        body.append(
            _text(
                col_title,
                left + cell * len(col_labels) / 2,
                TITLE_H + 10,
                text_anchor="middle",
                font_weight=600,
            )
        )
    if row_title:
        mid = top + cell * len(row_labels) / 2
        body.append(
            _text(
                row_title,
                14,
                mid,
                text_anchor="middle",
                font_weight=600,
                transform=f"rotate(-90 14 {_c(mid)})",
            )
        )
    for j, label in enumerate(col_labels):
        x, y = left + j * cell + cell / 2, top - 6
        body.append(
            _text(
                label, x, y, max_chars=28, font_size=SMALL, transform=f"rotate(-45 {_c(x)} {_c(y)})"
            )
        )
    for i, label in enumerate(row_labels):
        y = top + i * cell
        body.append(
            _text(
                label, left - 8, y + cell / 2 + 4, max_chars=28, text_anchor="end", font_size=SMALL
            )
        )
        for j, value in enumerate(cells[i]):
            body += _cell(left + j * cell, y, cell, value, peak, diagonal and i == j)
    return _svg(title, width, height, body)


def _cell(x, y, size, value, peak, outline) -> list[str]:
    share = 0.0 if value is None else abs(value) / peak
    stroke = ' stroke="currentColor" stroke-width="1.5"' if outline else ""
    parts = [
        f'<rect x="{_c(x + 1)}" y="{_c(y + 1)}" width="{_c(size - 2)}" height="{_c(size - 2)}" '
        f'fill="{PALETTE[0]}" fill-opacity="{0.06 + 0.94 * share:.2f}"{stroke}/>'
    ]
    colour = {"fill": "#ffffff"} if share > 0.55 else {}
    text = "–" if value is None else fmt_number(value)
    parts.append(_text(text, x + size / 2, y + size / 2 + 4, text_anchor="middle", **colour))
    return parts


# --------------------------------------------------------------------------------------------
# line chart


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float | None]]],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    integer_x: bool = False,
) -> SafeString:
    """One line per series over numeric x (a training step, an epoch, seconds); ``integer_x``
    keeps the x ticks on whole numbers (steps).

    Points are ``(x, y)``; a None or NaN y breaks the line there (a gap, not a drop to 0).
    Points are drawn as dots too when a series has 40 points or fewer. The y axis is fitted to
    the data (a loss need not start at 0).
    """
    names = list(series)
    clean = {
        name: [(_finite(x), _finite(y)) for x, y in series[name] if _finite(x) is not None]
        for name in names
    }
    points = [(x, y) for pts in clean.values() for x, y in pts if y is not None]
    if not points:
        return empty_chart(title)
    x_ticks = nice_ticks(min(p[0] for p in points), max(p[0] for p in points), 6, integer=integer_x)
    y_ticks = nice_ticks(min(p[1] for p in points), max(p[1] for p in points), 5)
    left, right = 70.0, WIDTH - 20.0
    legend, legend_h = _legend(names, left, TITLE_H, right - left) if len(names) > 1 else ([], 0)
    top = TITLE_H + legend_h + 10
    bottom = top + 240.0

    def x_of(v: float) -> float:
        return left + (v - x_ticks[0]) / (x_ticks[-1] - x_ticks[0]) * (right - left)

    def y_of(v: float) -> float:
        return bottom - (v - y_ticks[0]) / (y_ticks[-1] - y_ticks[0]) * (bottom - top)

    body = [*legend, *_grid_y(y_ticks, y_of, left, right)]
    for tick in x_ticks:
        body.append(
            f'<text x="{_c(x_of(tick))}" y="{_c(bottom + 15)}" text-anchor="middle" '
            f'font-size="{SMALL}" fill-opacity="0.75">{_tick_text(tick, x_ticks)}</text>'
        )
    if x_label:
        body.append(_text(x_label, (left + right) / 2, bottom + 34, text_anchor="middle"))
    if y_label:
        mid = (top + bottom) / 2
        body.append(
            _text(y_label, 16, mid, text_anchor="middle", transform=f"rotate(-90 16 {_c(mid)})")
        )
    for s, name in enumerate(names):
        body += _line(sorted(clean[name], key=lambda p: p[0]), x_of, y_of, _colour(s), name)
    return _svg(title, WIDTH, bottom + (44 if x_label else 26), body)


def _line(points, x_of, y_of, colour, name) -> list[str]:
    segments, current = [], []
    for x, y in points:
        if y is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append((x_of(x), y_of(y)))
    if current:
        segments.append(current)
    parts = []
    for segment in segments:
        d = " ".join(f"{'M' if k == 0 else 'L'}{_c(x)} {_c(y)}" for k, (x, y) in enumerate(segment))
        parts.append(
            f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2" '
            f'stroke-linejoin="round"><title>{escape(str(name))}</title></path>'
        )
    dots = sum(len(s) for s in segments) <= 40
    for segment in segments:
        if dots or len(segment) == 1:
            parts += [
                f'<circle cx="{_c(x)}" cy="{_c(y)}" r="3" fill="{colour}"/>' for x, y in segment
            ]
    return parts


# --------------------------------------------------------------------------------------------
# histogram


def histogram_counts(
    values: Sequence[float], bins: int | Sequence[float]
) -> tuple[list[float], list[int]]:
    """Bin edges and counts. ``bins`` is a count of equal-width bins over [min, max] or the
    edges themselves; every bin is [left, right) except the last, which is closed. Values
    outside explicit edges are left out."""
    if isinstance(bins, int):
        lo, hi = min(values), max(values)
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        count = max(1, bins)
        edges = [lo + (hi - lo) * k / count for k in range(count + 1)]
        edges[-1] = hi
    else:
        edges = sorted(float(e) for e in bins)
        if len(edges) < 2:
            raise ValueError("explicit bins need at least two edges")
    counts = [0] * (len(edges) - 1)
    for v in values:
        if v < edges[0] or v > edges[-1]:
            continue
        k = next((k for k in range(len(counts)) if v < edges[k + 1]), len(counts) - 1)
        counts[k] += 1
    return edges, counts


def histogram(
    values: Sequence[float | None],
    *,
    bins: int | Sequence[float] = 10,
    title: str,
    unit: str = "",
    x_label: str = "",
    reference: float | None = None,
    reference_label: str = "reference",
) -> SafeString:
    """Counts of ``values`` in ``bins`` (a number of equal bins, or explicit edges).

    None and NaN values are dropped. ``unit`` is appended to the x tick labels; ``reference``
    draws a dashed vertical line (e.g. the paper's 2.6% on a per-trajectory ratio histogram).
    """
    clean = [v for v in (_finite(x) for x in values) if v is not None]
    if not clean:
        return empty_chart(title)
    edges, counts = histogram_counts(clean, bins)
    ref = _finite(reference)
    lo, hi = edges[0], edges[-1]
    if ref is not None:
        lo, hi = min(lo, ref), max(hi, ref)
    x_ticks = [t for t in nice_ticks(lo, hi, 6) if lo - 1e-12 <= t <= hi + 1e-12] or [lo, hi]
    y_ticks = nice_ticks(0, max(counts), 4, integer=True)
    left, right = 56.0, WIDTH - 20.0
    top = TITLE_H + (32 if ref is not None else 12)  # room for count labels under the ref label
    bottom = top + 220.0

    def x_of(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (right - left)

    def y_of(v: float) -> float:
        return bottom - v / y_ticks[-1] * (bottom - top)

    body = _grid_y(y_ticks, y_of, left, right)
    for tick in x_ticks:
        body.append(
            f'<text x="{_c(x_of(tick))}" y="{_c(bottom + 15)}" text-anchor="middle" '
            f'font-size="{SMALL}" fill-opacity="0.75">{_tick_text(tick, x_ticks, unit)}</text>'
        )
    for k, count in enumerate(counts):
        x0, x1 = x_of(edges[k]), x_of(edges[k + 1])
        tip = f"{fmt_number(edges[k])}–{fmt_number(edges[k + 1])}{unit}: {count}"
        body.append(
            _bar(
                x0 + 0.5, y_of(count), max(x1 - x0 - 1, 0.5), bottom - y_of(count), PALETTE[0], tip
            )
        )
        if count and len(counts) <= 30:
            body.append(
                _text(
                    fmt_number(count),
                    (x0 + x1) / 2,
                    y_of(count) - 3,
                    text_anchor="middle",
                    font_size=10,
                )
            )
    if x_label:
        body.append(_text(x_label, (left + right) / 2, bottom + 34, text_anchor="middle"))
    if ref is not None:
        label = f"{reference_label} {fmt_number(ref)}{unit}"
        body += _reference_line(x_of(ref), top - 16, x_of(ref), bottom, label)
    return _svg(title, WIDTH, bottom + (44 if x_label else 26), body)
