"""Server-side SVG charts: valid XML, escaped text, empty data, reference lines (no database)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.utils.safestring import SafeString

from curation.presentation import plots

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = ["<script>alert(1)</script>", '" onload="alert(1)', "a & b"]


def parse(svg: str) -> ET.Element:
    # our own output, not untrusted input
    root = ET.fromstring(str(svg))  # noqa: S314
    assert root.tag == f"{SVG}svg"
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(el.itertext()) for el in root.iter(f"{SVG}text")]


def charts_with(label: str) -> dict[str, str]:
    """Every chart kind, with ``label`` as title, category, series and axis names."""
    return {
        "bar": plots.bar_chart([label, "ok"], [1, 2], title=label, reference=1.5),
        "grouped": plots.grouped_bar_chart([label], {label: [3], "b": [1]}, title=label),
        "stacked": plots.grouped_bar_chart([label], {label: [3]}, title=label, stacked=True),
        "heatmap": plots.heatmap(
            [[1]], [label], [label], title=label, row_title=label, col_title=label
        ),
        "line": plots.line_chart({label: [(0, 1), (1, 2)]}, title=label, x_label=label),
        "histogram": plots.histogram([1, 2, 3], bins=3, title=label, x_label=label),
    }


@pytest.mark.parametrize("kind", list(charts_with("x")))
def test_it_returns_a_safe_accessible_svg(kind):
    svg = charts_with("Flaws by benchmark")[kind]
    assert isinstance(svg, SafeString)
    root = parse(svg)
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Flaws by benchmark"
    assert root.find(f"{SVG}title").text == "Flaws by benchmark"
    assert root.get("viewBox", "").startswith("0 0 ")
    assert root.get("width") == "100%"


@pytest.mark.parametrize("kind", list(charts_with("x")))
@pytest.mark.parametrize("label", HOSTILE)
def test_it_escapes_hostile_labels(kind, label):
    svg = charts_with(label)[kind]
    root = parse(svg)  # still well-formed XML
    assert "<script" not in svg
    assert not any(el.tag.endswith("script") for el in root.iter())
    assert not [el for el in root.iter() if any(a.startswith("on") for a in el.attrib)]
    assert root.get("aria-label") == label
    assert label in texts(root)  # shown verbatim, as text


def test_it_keeps_the_full_name_of_a_shortened_label_in_a_tooltip():
    name = "missing or wrong constraint " * 3
    root = parse(plots.bar_chart([name], [1], title="t"))
    category = next(el for el in root.iter(f"{SVG}text") if el.get("class") == "category")
    assert category.find(f"{SVG}title").text == name
    assert category.itertext() is not None and "…" in "".join(category.itertext())


@pytest.mark.parametrize(
    "svg",
    [
        plots.bar_chart([], [], title="Empty"),
        plots.bar_chart(["a"], [None], title="Empty"),
        plots.grouped_bar_chart([], {}, title="Empty"),
        plots.grouped_bar_chart(["a"], {"s": [None]}, title="Empty", stacked=True),
        plots.heatmap([], [], [], title="Empty"),
        plots.line_chart({}, title="Empty"),
        plots.line_chart({"loss": [(0, None), (1, float("nan"))]}, title="Empty"),
        plots.histogram([], title="Empty"),
        plots.histogram([None, float("inf")], title="Empty"),
    ],
)
def test_it_says_no_data_yet_for_empty_data(svg):
    root = parse(svg)
    assert plots.EMPTY_TEXT in texts(root)
    assert root.get("aria-label") == "Empty"


def reference_lines(root: ET.Element) -> list[ET.Element]:
    return [el for el in root.iter(f"{SVG}line") if el.get("class") == "reference"]


def test_it_draws_the_reference_line_on_a_bar_chart():
    svg = plots.bar_chart(
        ["NL4Opt", "IndustryOR"],
        [1.2, 2.1],
        title="Token modification ratio",
        unit="%",
        reference=2.6,
        reference_label="paper",
    )
    root = parse(svg)
    (line,) = reference_lines(root)
    assert line.get("stroke-dasharray")
    assert line.get("x1") == line.get("x2")  # vertical
    assert "paper 2.6%" in texts(root)
    assert {"1.2%", "2.1%"} <= set(texts(root))  # value labels
    # the axis reaches past the reference: the line lies inside the plot
    ticks = [t for t in texts(root) if t.endswith("%") and t[0].isdigit()]
    assert "3%" in ticks


def test_it_draws_no_reference_line_unless_asked():
    assert not reference_lines(parse(plots.bar_chart(["a"], [1], title="t")))


def test_it_draws_the_reference_line_on_a_histogram():
    root = parse(plots.histogram([0.01, 0.02, 0.03], bins=3, title="t", reference=0.026))
    assert len(reference_lines(root)) == 1


def test_it_draws_one_bar_per_value_and_stacks_with_totals():
    root = parse(
        plots.grouped_bar_chart(
            ["NL4Opt", "OptMATH"], {"computation": [5, 1], "domain": [1, 4]}, title="t"
        )
    )
    assert len(list(root.iter(f"{SVG}rect"))) == 2 + 4  # 2 legend swatches + 4 bars
    stacked = parse(
        plots.grouped_bar_chart(
            ["NL4Opt", "OptMATH"],
            {"computation": [5, 1], "domain": [1, 4]},
            title="t",
            stacked=True,
        )
    )
    assert {"6", "5"} <= set(texts(stacked))  # stack totals


def test_it_prints_the_count_in_every_heatmap_cell():
    matrix = [[5, 1], [0, 7]]
    root = parse(plots.heatmap(matrix, ["no flaw", "manual"], ["no flaw", "manual"], title="t"))
    assert [t for t in texts(root) if t.isdigit()] == ["5", "1", "0", "7"]


def test_it_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        plots.bar_chart(["a", "b"], [1], title="t")
    with pytest.raises(ValueError):
        plots.grouped_bar_chart(["a"], {"s": [1, 2]}, title="t")
    with pytest.raises(ValueError):
        plots.heatmap([[1, 2]], ["a"], ["a"], title="t")


def test_it_breaks_a_line_at_missing_points():
    series = {"loss": [(0, 2.0), (1, 1.5), (2, None), (3, 1.0), (4, 0.9)]}
    root = parse(plots.line_chart(series, title="t", x_label="step", y_label="loss"))
    assert len(list(root.iter(f"{SVG}path"))) == 2
    assert {"step", "loss"} <= set(texts(root))


def test_it_bins_a_histogram_with_the_last_edge_closed():
    edges, counts = plots.histogram_counts([0, 1, 2, 3, 4], 2)
    assert edges == [0, 2, 4] and counts == [2, 3]
    edges, counts = plots.histogram_counts([5, 5], 4)  # one value: a unit-wide range
    assert sum(counts) == 2
    assert plots.histogram_counts([0.5, 9], [0, 1, 2])[1] == [1, 0]  # 9 is outside


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0, 2.9, [0, 1, 2, 3]),
        (0, 2.2, [0, 0.5, 1, 1.5, 2, 2.5]),
        (0, 100, [0, 20, 40, 60, 80, 100]),
        (0, 0, [0, 0.2, 0.4, 0.6, 0.8, 1]),
        (-3, 7, [-4, -2, 0, 2, 4, 6, 8]),
    ],
)
def test_it_picks_round_ticks(lo, hi, expected):
    assert plots.nice_ticks(lo, hi) == pytest.approx(expected)


def test_it_picks_integer_ticks_for_counts():
    assert plots.nice_ticks(0, 3, 4, integer=True) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("value", "text"),
    [(2.6, "2.6"), (0.026, "0.026"), (12000, "12,000"), (1234.5, "1,234"), (None, "n/a")],
)
def test_it_formats_value_labels(value, text):
    assert plots.fmt_number(value) == text
