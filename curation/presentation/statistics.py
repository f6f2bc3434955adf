"""Statistics for the curation pages: pure functions over plain records.

Nothing here imports Django or the ORM. Every function takes an iterable of plain records
(dicts, or any object whose fields can be read as attributes, e.g. dataclasses) and returns
JSON-able data: dicts, lists, ints, floats, strings and None. Views feed them from
``QuerySet.values(...)``; tests feed them hand-made fixtures.

Conventions shared by every function:

- A missing or null numeric field counts as 0 (a trajectory whose ``n_hint_tokens`` column is
  NULL had no hint tokens).
- A ratio whose denominator is 0 is ``None``, never a ZeroDivisionError and never 0.0: "no data"
  and "zero" read differently on a page.
- Ordering is stable: taxonomy order where it can be passed in, otherwise sorted by name.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from curation.engine.rollout import RESPONSE_LENGTH_DEFINITION as _RESPONSE_LENGTH

NO_FLAW_LABEL = "no flaw"

Record = Mapping[str, Any] | Any
Selector = Mapping[str, Any] | Callable[[Any], bool]


# --------------------------------------------------------------------------------------------
# helpers


def _get(record: Record, field: str, default: Any = None) -> Any:
    """Read ``field`` from a dict-like record or, failing that, from an attribute."""
    if isinstance(record, Mapping):
        return record.get(field, default)
    return getattr(record, field, default)


def _num(record: Record, field: str) -> float:
    value = _get(record, field)
    return 0 if value is None else value


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if not denominator else numerator / denominator


def _percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Percentile ``q`` (0–100) by linear interpolation between closest ranks.

    The same definition as numpy's default (``method="linear"``): p90 of [1..10] is 9.1.
    """
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _summary(values: Sequence[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "mean": statistics.fmean(ordered) if ordered else None,
        "median": statistics.median(ordered) if ordered else None,
        "p90": _percentile(ordered, 90),
        "max": ordered[-1] if ordered else None,
    }


def _ordered(seen: Iterable[Hashable], preferred: Sequence[Hashable] | None) -> list:
    """``preferred`` order first (kept even when unseen), then the rest sorted by name."""
    head = list(preferred or [])
    known = set(head)
    rest = sorted({value for value in seen if value not in known}, key=lambda v: str(v))
    return head + rest


# --------------------------------------------------------------------------------------------
# token modification ratio


def token_modification_ratio(trajectories: Iterable[Record]) -> float | None:
    """Hint tokens over all generated tokens, pooled over ``trajectories``.

    Records carry ``n_model_tokens`` and ``n_hint_tokens``. Returns
    ``sum(hint) / sum(model + hint)`` (the paper's headline, under 2.6%), as a fraction (0.026,
    not 2.6), or None when there are no generated tokens at all. Interpreter output is neither
    generated nor counted.
    """
    model = hint = 0
    for record in trajectories:
        model += _num(record, "n_model_tokens")
        hint += _num(record, "n_hint_tokens")
    return _ratio(hint, model + hint)


def token_modification_ratio_per_trajectory(trajectories: Iterable[Record]) -> dict[str, Any]:
    """The ratio trajectory by trajectory, for a histogram.

    Returns ``{"values": [...], "n", "mean", "median", "p90", "max"}``: ``values`` are the
    per-trajectory fractions in input order; trajectories with no generated tokens are left out
    (their ratio is undefined). On an empty input the summary fields are None and ``n`` is 0.
    ``p90`` interpolates linearly between ranks (numpy's default).
    """
    values = []
    for record in trajectories:
        hint = _num(record, "n_hint_tokens")
        ratio = _ratio(hint, _num(record, "n_model_tokens") + hint)
        if ratio is not None:
            values.append(ratio)
    return {"values": values, **_summary(values)}


def hint_lengths(lengths: Iterable[int]) -> dict[str, Any]:
    """The length distribution of hints (in tokens, as CALM_HINT_MAX_TOKENS counts them), shown
    beside the modification ratio: ``{"values", "n", "mean", "median", "p90", "max"}``."""
    values = [int(v) for v in lengths]
    return {"values": values, **_summary(values)}


# --------------------------------------------------------------------------------------------
# flaw distribution


def flaw_distribution(
    labels: Iterable[Record],
    *,
    flaw_types: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Counts and shares of flaws by benchmark × flaw type and benchmark × category.

    Records carry ``benchmark``, ``category`` and ``flaw_type``; records whose ``flaw_type`` is
    None (a "no flaw" label) are ignored. ``flaw_types``, ``categories`` and ``benchmarks`` fix
    the order (pass the taxonomy order); names given there appear even with zero counts, unseen
    extras follow sorted by name. Shares are within a benchmark (a row sums to 1), None for a
    benchmark without flaws. The series are aligned with ``benchmarks`` and plug straight into
    ``plots.grouped_bar_chart(d["benchmarks"], d["by_category"]["shares"], stacked=True)``::

        {
          "benchmarks": [b, ...], "flaw_types": [f, ...], "categories": [c, ...],
          "benchmark_totals": [n per benchmark],
          "by_flaw_type": {"counts": {f: [per benchmark]}, "shares": {f: [per benchmark]}},
          "by_category": {"counts": {c: [per benchmark]}, "shares": {c: [per benchmark]}},
          "totals": {"n": N, "flaw_types": {f: n}, "flaw_type_shares": {f: share},
                     "categories": {c: n}, "category_shares": {c: share}},
        }
    """
    rows = [
        (_get(r, "benchmark") or "", _get(r, "category") or "", _get(r, "flaw_type"))
        for r in labels
        if _get(r, "flaw_type") is not None
    ]
    bench_order = _ordered((b for b, _, _ in rows), benchmarks)
    flaw_order = _ordered((f for _, _, f in rows), flaw_types)
    category_order = _ordered((c for _, c, _ in rows), categories)
    by_flaw = Counter((b, f) for b, _, f in rows)
    by_category = Counter((b, c) for b, c, _ in rows)
    bench_totals = Counter(b for b, _, _ in rows)
    totals_flaw = Counter(f for _, _, f in rows)
    totals_category = Counter(c for _, c, _ in rows)

    def table(counter: Counter, names: list) -> dict[str, dict]:
        counts = {name: [counter[(b, name)] for b in bench_order] for name in names}
        shares = {
            name: [_ratio(counter[(b, name)], bench_totals[b]) for b in bench_order]
            for name in names
        }
        return {"counts": counts, "shares": shares}

    return {
        "benchmarks": bench_order,
        "flaw_types": flaw_order,
        "categories": category_order,
        "benchmark_totals": [bench_totals[b] for b in bench_order],
        "by_flaw_type": table(by_flaw, flaw_order),
        "by_category": table(by_category, category_order),
        "totals": {
            "n": len(rows),
            "flaw_types": {f: totals_flaw[f] for f in flaw_order},
            "flaw_type_shares": {f: _ratio(totals_flaw[f], len(rows)) for f in flaw_order},
            "categories": {c: totals_category[c] for c in category_order},
            "category_shares": {c: _ratio(totals_category[c], len(rows)) for c in category_order},
        },
    }


# --------------------------------------------------------------------------------------------
# interventions and golden yield


def _is_fixed(record: Record) -> bool:
    fixed = _get(record, "fixed")
    if fixed is not None:
        return bool(fixed)
    return _get(record, "correct_before") is False and _get(record, "correct_after") is True


def fixes_per_round(interventions: Iterable[Record]) -> dict[str, Any]:
    """How many interventions fixed the answer, round by round.

    Records carry ``round`` (1-based: the first hint on a trajectory is round 1), ``fixed``
    (the branch turned an incorrect answer into a correct one; when None it is derived from
    ``correct_before is False and correct_after is True``), and ``correct_before`` /
    ``correct_after`` (None = not graded). Raises ValueError on a round below 1.

    Returns ``{"rounds": [...], "total": {...}}``; every round from 1 to the highest seen is
    listed (empty ones with zeros). A round row::

        {"round": k, "interventions": n, "fixed": f, "fix_rate": f / n or None,
         "incorrect_before": i, "fix_rate_of_incorrect": f / i or None,
         "broken": b,  # correct before, incorrect after
         "cumulative_interventions", "cumulative_fixed", "cumulative_fix_rate"}

    ``total`` has ``interventions``, ``fixed``, ``fix_rate``, ``incorrect_before``,
    ``fix_rate_of_incorrect`` and ``broken`` over all rounds.
    """
    buckets: dict[int, Counter] = defaultdict(Counter)
    for record in interventions:
        round_ = int(_get(record, "round"))
        if round_ < 1:
            raise ValueError(f"intervention rounds are 1-based, got {round_}")
        bucket = buckets[round_]
        bucket["interventions"] += 1
        bucket["fixed"] += _is_fixed(record)
        before, after = _get(record, "correct_before"), _get(record, "correct_after")
        bucket["incorrect_before"] += before is False
        bucket["broken"] += before is True and after is False

    rounds, total = [], Counter()
    for round_ in range(1, max(buckets, default=0) + 1):
        bucket = buckets.get(round_, Counter())
        total.update(bucket)
        rounds.append(
            {
                "round": round_,
                **_fix_row(bucket),
                "cumulative_interventions": total["interventions"],
                "cumulative_fixed": total["fixed"],
                "cumulative_fix_rate": _ratio(total["fixed"], total["interventions"]),
            }
        )
    return {"rounds": rounds, "total": _fix_row(total)}


def _fix_row(bucket: Counter) -> dict[str, Any]:
    return {
        "interventions": bucket["interventions"],
        "fixed": bucket["fixed"],
        "fix_rate": _ratio(bucket["fixed"], bucket["interventions"]),
        "incorrect_before": bucket["incorrect_before"],
        "fix_rate_of_incorrect": _ratio(bucket["fixed"], bucket["incorrect_before"]),
        "broken": bucket["broken"],
    }


GOLDEN_OUTCOMES = (
    "candidate",
    "approved",
    "rejected",
    "wrong_flawless",
    "cap_reached",
    "error",
    "running",
    "waiting",
)
FINISHED_OUTCOMES = frozenset(GOLDEN_OUTCOMES[:6])
# Only a candidate (correct and judged flawless) goes to a human, who approves or rejects it.
CANDIDATE_OUTCOMES = frozenset({"candidate", "approved", "rejected"})


def golden_yield(items: Iterable[Record]) -> dict[str, Any]:
    """Yield of a golden-set run: how many items became candidates and approved trajectories.

    Records carry ``outcome``, one of ``GOLDEN_OUTCOMES``. Finished items are every outcome but
    ``running`` and ``waiting``. An item *reached candidate* when its outcome is ``candidate``,
    ``approved`` or ``rejected`` (approval and rejection are decisions on a candidate).
    Unknown outcomes are counted under their own name in ``counts`` and under ``unknown``, but
    are neither finished nor pending.

    Returns ``{"counts": {outcome: n, ...every known outcome, even 0}, "total", "finished",
    "pending", "unknown", "candidates", "candidate_rate", "approved_rate"}`` where both rates are
    over finished items (None when nothing has finished).
    """
    counts = Counter({outcome: 0 for outcome in GOLDEN_OUTCOMES})
    counts.update(_get(item, "outcome") for item in items)
    finished = sum(counts[o] for o in FINISHED_OUTCOMES)
    candidates = sum(counts[o] for o in CANDIDATE_OUTCOMES)
    unknown = sum(n for o, n in counts.items() if o not in GOLDEN_OUTCOMES)
    return {
        "counts": dict(counts),
        "total": sum(counts.values()),
        "finished": finished,
        "pending": counts["running"] + counts["waiting"],
        "unknown": unknown,
        "candidates": candidates,
        "candidate_rate": _ratio(candidates, finished),
        "approved_rate": _ratio(counts["approved"], finished),
    }


# --------------------------------------------------------------------------------------------
# per model


# The one definition of response length (evaluation's ``response_tokens`` is the same count).
RESPONSE_LENGTH_DEFINITION = _RESPONSE_LENGTH


def per_model(trajectories: Iterable[Record]) -> dict[str, Any]:
    """Code blocks per trajectory, response length and accuracy for each model.

    Records carry ``model`` (a name), ``n_code_calls``, ``n_model_tokens``,
    ``n_interpreter_tokens``, ``n_hint_tokens`` and ``is_correct`` (None = not graded).
    Response length is the generated tokens, model + hint: interpreter output is context fed
    to the model, not something it wrote. Accuracy is over graded trajectories only.

    Returns ``{"response_length": RESPONSE_LENGTH_DEFINITION, "models": [row, ...]}`` sorted by
    model name, a row being ``{"model", "n", "code_blocks_mean", "code_blocks_median",
    "response_length_mean", "response_length_median", "interpreter_tokens_mean", "n_graded",
    "n_correct", "accuracy"}``.
    """
    groups: dict[str, list] = defaultdict(list)
    for record in trajectories:
        groups[str(_get(record, "model") or "")].append(record)
    return {
        "response_length": RESPONSE_LENGTH_DEFINITION,
        "models": [_model_row(name, groups[name]) for name in sorted(groups)],
    }


def _model_row(name: str, records: list) -> dict[str, Any]:
    code = [_num(r, "n_code_calls") for r in records]
    length = [_num(r, "n_model_tokens") + _num(r, "n_hint_tokens") for r in records]
    graded = [bool(_get(r, "is_correct")) for r in records if _get(r, "is_correct") is not None]
    return {
        "model": name,
        "n": len(records),
        "code_blocks_mean": statistics.fmean(code),
        "code_blocks_median": statistics.median(code),
        "response_length_mean": statistics.fmean(length),
        "response_length_median": statistics.median(length),
        "interpreter_tokens_mean": statistics.fmean(
            _num(r, "n_interpreter_tokens") for r in records
        ),
        "n_graded": len(graded),
        "n_correct": sum(graded),
        "accuracy": _ratio(sum(graded), len(graded)),
    }


# --------------------------------------------------------------------------------------------
# agreement


def cohen_kappa(pairs: Iterable[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's κ between two raters over categorical ``pairs`` ``(a, b)``.

    None is a category like any other ("no flaw"). κ = (p_o − p_e) / (1 − p_e). Returns None
    with no pairs. Convention: when p_e = 1 (both raters used one and the same category for
    every item, so p_o = 1 too) κ is 0/0 mathematically; we return 1.0, since the raters agree
    perfectly and a page should not show "undefined" for that.
    """
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    left = Counter(a for a, _ in pairs)
    right = Counter(b for _, b in pairs)
    expected = sum(left[c] * right[c] for c in left) / (n * n)
    if expected >= 1:
        return 1.0
    return (observed - expected) / (1 - expected)


KAPPA_CI_MIN_PAIRS = 10


def kappa_interval(
    pairs: Iterable[tuple[Hashable, Hashable]], z: float = 1.96
) -> tuple[float, float] | None:
    """Confidence interval for Cohen's κ (95% with the default ``z``): κ ± z·SE, clipped to
    [-1, 1], with the large-sample standard error of Fleiss, Cohen & Everitt (1969):

        Var(κ) = [Σ_i p_ii((1−p_e) − (p_i· + p_·i)(1−p_o))² + (1−p_o)² Σ_{i≠j} p_ij(p_·i + p_j·)²
                  − (p_o·p_e − 2p_e + p_o)²] / (n (1−p_e)⁴)

    None with fewer than ``KAPPA_CI_MIN_PAIRS`` pairs (the large-sample formula then badly
    understates the uncertainty), or when p_e = 1 (κ is then a convention, see above).
    """
    pairs = list(pairs)
    n = len(pairs)
    if n < KAPPA_CI_MIN_PAIRS:
        return None
    cells = Counter(pairs)
    row = Counter(a for a, _ in pairs)
    col = Counter(b for _, b in pairs)
    categories = set(row) | set(col)
    p_o = sum(cells[(c, c)] for c in categories) / n
    p_e = sum(row[c] * col[c] for c in categories) / (n * n)
    if p_e >= 1:
        return None
    kappa = (p_o - p_e) / (1 - p_e)
    diagonal = sum(
        cells[(c, c)] / n * ((1 - p_e) - (row[c] + col[c]) / n * (1 - p_o)) ** 2 for c in categories
    )
    off = sum(count / n * ((col[a] + row[b]) / n) ** 2 for (a, b), count in cells.items() if a != b)
    variance = (diagonal + (1 - p_o) ** 2 * off - (p_o * p_e - 2 * p_e + p_o) ** 2) / (
        n * (1 - p_e) ** 4
    )
    half = z * math.sqrt(max(variance, 0.0))
    return max(-1.0, kappa - half), min(1.0, kappa + half)


def confusion_matrix(
    pairs: Iterable[tuple[Hashable, Hashable]], categories: Sequence[Hashable] | None = None
) -> dict[str, Any]:
    """Counts of ``(a, b)`` pairs; rows are the first rater (a), columns the second (b).

    ``categories`` fixes the order (None, "no flaw", may be among them); values seen but not
    listed follow, in order of first appearance. Returns ``{"categories": [...], "labels":
    [...], "matrix": [[...]]}`` where ``labels`` are the categories as display strings (None
    becomes ``NO_FLAW_LABEL``) and ``matrix[i][j]`` counts a = categories[i], b = categories[j].
    """
    pairs = list(pairs)
    order = list(categories or [])
    for value in itertools.chain.from_iterable(pairs):
        if value not in order:
            order.append(value)
    index = {category: i for i, category in enumerate(order)}
    matrix = [[0] * len(order) for _ in order]
    for a, b in pairs:
        matrix[index[a]][index[b]] += 1
    labels = [NO_FLAW_LABEL if c is None else str(c) for c in order]
    return {"categories": order, "labels": labels, "matrix": matrix}


def _selector(spec: Selector) -> Callable[[Any], bool]:
    if callable(spec):
        return spec
    return lambda record: all(_get(record, k) == v for k, v in spec.items())


def _current_labels(labels: Iterable[Record]) -> dict[tuple, Record]:
    """One label per (trajectory, step, author): the latest ``created_at`` if records carry
    one, else the last in input order."""
    indexed = list(enumerate(labels))
    if all(_get(r, "created_at") is not None for _, r in indexed):
        indexed.sort(key=lambda item: (_get(item[1], "created_at"), item[0]))
    current = {}
    for _, record in indexed:
        key = (_get(record, "trajectory_id"), _get(record, "step_index"), _get(record, "author"))
        current[key] = record
    return current


def _step_pairs(
    current: Mapping[tuple, Record],
    left_author: Hashable,
    right_author: Hashable,
    reviewed: Mapping[Hashable, set],
    units: list | None = None,
) -> list[tuple[Hashable, Hashable]]:
    """Pairs for one author against another over the trajectories both reviewed (and, into
    ``units``, the same pairs with their trajectory, step and authors)."""
    shared = reviewed.get(left_author, set()) & reviewed.get(right_author, set())
    steps = {
        (traj, step)
        for traj, step, author in current
        if traj in shared and author in (left_author, right_author)
    }
    pairs = []
    for traj, step in sorted(steps, key=lambda s: (str(s[0]), s[1])):
        a = current.get((traj, step, left_author))
        b = current.get((traj, step, right_author))
        pairs.append(
            (
                None if a is None else _get(a, "flaw_type"),
                None if b is None else _get(b, "flaw_type"),
            )
        )
    if units is not None:  # which steps the pairs are, for opening a confusion-matrix cell
        ordered = sorted(steps, key=lambda s: (str(s[0]), s[1]))
        units.extend(
            {"a": a, "b": b, "trajectory_id": traj, "step_index": step,
             "left_author": left_author, "right_author": right_author}
            for (a, b), (traj, step) in zip(pairs, ordered, strict=True)
        )  # fmt: skip
    return pairs


def _reviewed_by_author(
    current: Mapping[tuple, Record], reviewed: Iterable[Record] | None
) -> dict[Hashable, set]:
    result: dict[Hashable, set] = defaultdict(set)
    for traj, _, author in current:
        result[author].add(traj)
    for record in reviewed or ():
        result[_get(record, "author")].add(_get(record, "trajectory_id"))
    return result


def agreement(
    labels: Iterable[Record],
    *,
    left: Selector,
    right: Selector,
    reviewed: Iterable[Record] | None = None,
    categories: Sequence[Hashable] | None = None,
) -> dict[str, Any]:
    """Step-aligned agreement between two raters (or two groups of raters).

    ``labels`` are records ``{trajectory_id, step_index, author, source, flaw_type}`` with
    ``flaw_type`` None for an explicit "no flaw" label; ``author`` identifies a rater (e.g.
    ``"user:7"`` or ``"model:3"``). If several records share (trajectory, step, author) the
    current one wins: the latest ``created_at`` when every record has one, else the last.

    ``left`` and ``right`` select raters: a mapping of field values that a record must match
    (``{"source": "human"}``, ``{"author": "user:7"}``) or a predicate on a record. Every author
    with a matching label or reviewed record is a rater of that side (give reviewed records a
    ``source`` too when selecting by source, so a reviewer who flagged nothing is found).

    The units are steps, paired per (left author, right author), excluding an author paired
    with itself:

    - Only trajectories *both* authors reviewed count. An author reviewed a trajectory if they
      labelled any step of it or if ``reviewed`` (records ``{trajectory_id, author}``, e.g.
      finished review assignments or Intervener diagnoses) lists it.
    - Within such a trajectory, every step that either author labelled is one pair; the side
      without a label on that step counts as "no flaw" (None), since it read the trajectory
      and flagged nothing there. A step neither labelled is not a unit (both implicitly "no
      flaw"): counting the many clean steps would inflate κ and the step counts are not here.

    With several authors on a side (humans vs the model) the pairs of every author pairing are
    pooled. Returns ``{"pairs": n, "rater_pairs": number of author pairings that contributed,
    "observed_agreement": share of equal pairs or None, "kappa": κ or None, "confusion":
    confusion_matrix(...), "kappa_ci": kappa_interval(...), "units": the pairs with their
    trajectory, step and authors}`` with rows = left.
    """
    current = _current_labels(labels)
    reviewed = list(reviewed or ())
    # A reviewer who found nothing to flag has no label at all: the reviewed records name them.
    records = [*current.values(), *reviewed]
    left_of, right_of = _selector(left), _selector(right)
    left_authors = sorted({_get(r, "author") for r in records if left_of(r)}, key=str)
    right_authors = sorted({_get(r, "author") for r in records if right_of(r)}, key=str)
    reviewed_by = _reviewed_by_author(current, reviewed)
    pairs, rater_pairs, units = [], 0, []
    for a, b in itertools.product(left_authors, right_authors):
        if a == b:
            continue
        found = _step_pairs(current, a, b, reviewed_by, units)
        rater_pairs += bool(found)
        pairs.extend(found)
    return {**_agreement_result(pairs, rater_pairs, categories), "units": units}


def _agreement_result(
    pairs: list, rater_pairs: int, categories: Sequence[Hashable] | None
) -> dict[str, Any]:
    return {
        "pairs": len(pairs),
        "rater_pairs": rater_pairs,
        "observed_agreement": _ratio(sum(a == b for a, b in pairs), len(pairs)),
        "kappa": cohen_kappa(pairs),
        "kappa_ci": kappa_interval(pairs),
        "confusion": confusion_matrix(pairs, categories),
    }


def reviewer_agreement(
    labels: Iterable[Record],
    *,
    reviewed: Iterable[Record] | None = None,
    human_source: str = "human",
) -> list[dict[str, Any]]:
    """κ for every pair of human reviewers who reviewed a common trajectory.

    Same records and alignment rules as :func:`agreement`; only records whose ``source`` is
    ``human_source`` take part. Returns a list sorted by (a, b), one row per unordered pair
    with at least one aligned step::

        {"a", "b", "pairs", "shared_steps" (steps both labelled), "observed_agreement",
         "kappa"}
    """
    current = {
        key: r for key, r in _current_labels(labels).items() if _get(r, "source") == human_source
    }
    reviewed_by = _reviewed_by_author(current, reviewed)
    authors = sorted({author for _, _, author in current}, key=str)
    rows = []
    for a, b in itertools.combinations(authors, 2):
        # Reviewers who labelled nothing have no steps to compare: they never appear here.
        pairs = _step_pairs(current, a, b, reviewed_by)
        if not pairs:
            continue
        both = {(t, s) for t, s, x in current if x == a} & {(t, s) for t, s, x in current if x == b}
        rows.append(
            {
                "a": a,
                "b": b,
                "pairs": len(pairs),
                "shared_steps": len(both),
                "observed_agreement": _ratio(sum(x == y for x, y in pairs), len(pairs)),
                "kappa": cohen_kappa(pairs),
                "kappa_ci": kappa_interval(pairs),
            }
        )
    return rows


# --------------------------------------------------------------------------------------------
# throughput


def _seconds(value: datetime | float | int) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def throughput_eta(
    done_times: Iterable[datetime | float | int],
    remaining: int,
    *,
    window: int = 20,
) -> dict[str, Any]:
    """Recent throughput and the time left for ``remaining`` items.

    ``done_times`` are finish times of done items (aware datetimes or epoch seconds, any
    order). The rate uses the ``window`` most recent finishes: (k − 1) intervals over the span
    from the first to the last of them, so it needs at least two distinct times. Returns
    ``{"rate_per_s": float | None, "eta_seconds": float | None, "window_items": k,
    "remaining": remaining}``. The ETA is ``remaining / rate``, counted from the last finish;
    it is 0.0 when nothing remains and None when the rate is unknown. Raises ValueError on a
    negative ``remaining`` or a ``window`` below 2.
    """
    if remaining < 0:
        raise ValueError("remaining must be >= 0")
    if window < 2:
        raise ValueError("window must be >= 2 (a rate needs an interval)")
    recent = sorted(_seconds(t) for t in done_times)[-window:]
    span = recent[-1] - recent[0] if recent else 0
    rate = (len(recent) - 1) / span if span > 0 else None
    eta = None if rate is None else remaining / rate
    if remaining == 0:
        eta = 0.0  # done, even when the rate is unknown
    return {
        "rate_per_s": rate,
        "eta_seconds": eta,
        "window_items": len(recent),
        "remaining": remaining,
    }
