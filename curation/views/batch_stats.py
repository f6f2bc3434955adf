"""The figures of a batch page: the paper's statistics, computed by
curation.presentation.statistics from plain rows and drawn by curation.presentation.plots as
inline SVG (no JavaScript)."""

from __future__ import annotations

from django.conf import settings

from .. import engine
from ..models import Batch, BatchItem, BatchRound, FlawType, Hint
from ..presentation import plots, statistics
from ..selectors.batches import batch_trajectories
from ..selectors.labels import current_flaw_labels

PAPER_TMR = 0.026  # CALM: hints changed under 2.6% of the generated tokens


def trajectory_charts(trajectories) -> dict:
    """Charts over any set of trajectories (a dataset version): TMR, flaws, models."""
    rows = list(
        trajectories.values(
            "n_model_tokens", "n_hint_tokens", "n_interpreter_tokens", "n_code_calls",
            "is_correct", "endpoint__name",
        )
    )  # fmt: skip
    per_traj = statistics.token_modification_ratio_per_trajectory(rows)
    labels = [
        {"benchmark": r["trajectory__problem__benchmark__name"],
         "category": r["flaw_type__category__name"], "flaw_type": r["flaw_type__name"]}
        for r in current_flaw_labels(trajectories)
        .values("trajectory__problem__benchmark__name", "flaw_type__category__name",
                "flaw_type__name")
    ]  # fmt: skip
    distribution = statistics.flaw_distribution(
        labels, flaw_types=list(FlawType.objects.values_list("name", flat=True))
    )
    return {
        **hint_length_figures(Hint.objects.filter(branch__in=_with_ancestors(trajectories))),
        "models": statistics.per_model({"model": r["endpoint__name"] or "?", **r} for r in rows),
        "tmr_chart": plots.histogram(
            [100 * v for v in per_traj["values"]], bins=10, unit="%",
            title="Token modification ratio per trajectory (%)",
            reference=100 * PAPER_TMR, reference_label="paper",
        ),
        "flaw_chart": plots.grouped_bar_chart(
            distribution["benchmarks"], distribution["by_flaw_type"]["counts"], stacked=True,
            title="Current flaw labels on these trajectories (human and model), by benchmark",
        ),
    }  # fmt: skip


def _with_ancestors(trajectories) -> set[int]:
    """The ids of ``trajectories`` and of every trajectory they branched from: the hints a
    golden trajectory holds were inserted along that line (each made one branch)."""
    from ..models import Trajectory

    ids = set(trajectories.values_list("pk", flat=True))
    frontier = set(trajectories.exclude(parent=None).values_list("parent_id", flat=True))
    while frontier - ids:
        new = frontier - ids
        ids |= new
        frontier = set(
            Trajectory.objects.filter(pk__in=new).exclude(parent=None)
            .values_list("parent_id", flat=True)
        )  # fmt: skip
    return ids


def hint_length_figures(hints) -> dict:
    """The hint-length distribution (tokens as CALM_HINT_MAX_TOKENS counts them) and its chart,
    shown beside the modification ratio."""
    lengths = statistics.hint_lengths(
        engine.hint_checks.count_tokens(text) for text in hints.values_list("text", flat=True)
    )
    limit = settings.CALM_HINT_MAX_TOKENS or None
    chart = (
        plots.histogram(
            lengths["values"], bins=10, title="Hint length (tokens)", reference=limit,
            reference_label="limit",
        )
        if lengths["values"]
        else ""
    )  # fmt: skip
    return {"hint_lengths": lengths, "hint_limit": limit, "hint_chart": chart}


def batch_charts(batch: Batch) -> dict:
    """Numbers and SVG charts for the batch page."""
    trajectories = batch_trajectories(batch)
    rows = list(
        trajectories.values(
            "n_model_tokens", "n_hint_tokens", "n_interpreter_tokens", "n_code_calls",
            "is_correct", "endpoint__name", "problem__benchmark__name",
        )
    )  # fmt: skip
    finals = list(
        BatchItem.objects.filter(batch=batch, outcome="candidate").values(
            "trajectory__n_model_tokens", "trajectory__n_hint_tokens"
        )
    )
    candidate_tmr = statistics.token_modification_ratio(
        {
            "n_model_tokens": r["trajectory__n_model_tokens"],
            "n_hint_tokens": r["trajectory__n_hint_tokens"],
        }
        for r in finals
    )
    per_traj = statistics.token_modification_ratio_per_trajectory(rows)
    labels = [
        {"benchmark": r["trajectory__problem__benchmark__name"],
         "category": r["flaw_type__category__name"], "flaw_type": r["flaw_type__name"]}
        for r in current_flaw_labels(trajectories).filter(source="model")
        .values("trajectory__problem__benchmark__name", "flaw_type__category__name",
                "flaw_type__name")
    ]  # fmt: skip
    order = list(FlawType.objects.values_list("name", flat=True))
    distribution = statistics.flaw_distribution(labels, flaw_types=order)
    rounds = statistics.fixes_per_round(
        {"round": n, "correct_before": b, "correct_after": a}
        for n, b, a in BatchRound.objects.filter(item__batch=batch).values_list(
            "number", "correct_before", "correct_after"
        )
    )
    outcomes = statistics.golden_yield(
        {"outcome": o or s} for o, s in BatchItem.objects.filter(batch=batch).values_list(
            "outcome", "state"
        )
    )  # fmt: skip
    models = statistics.per_model({"model": r["endpoint__name"] or "?", **r} for r in rows)
    hints = hint_length_figures(Hint.objects.filter(trajectory__in=trajectories))
    return {
        # The paper's "< 2.6%" is over golden trajectories: that is the headline; the ratio over
        # every trajectory of the batch is shown beside it, labelled.
        "tmr": statistics.token_modification_ratio(rows),
        "candidate_tmr": candidate_tmr,
        **hints,
        "yield": outcomes,
        "models": models,
        "tmr_chart": plots.histogram(
            [100 * v for v in per_traj["values"]], bins=10, unit="%",
            title="Token modification ratio per trajectory (%)",
            reference=100 * PAPER_TMR, reference_label="paper",
        ),
        "flaw_chart": plots.grouped_bar_chart(
            distribution["benchmarks"], distribution["by_category"]["counts"], stacked=True,
            title="Flaws found by the Intervener, by benchmark and category",
        ),
        "rounds_chart": plots.grouped_bar_chart(
            [f"round {r['round']}" for r in rounds["rounds"]],
            {"interventions": [r["interventions"] for r in rounds["rounds"]],
             "fixed": [r["fixed"] for r in rounds["rounds"]]},
            title="Interventions and fixes per round",
        ),
        "rounds": rounds,
        "outcome_chart": plots.bar_chart(
            [k for k, v in outcomes["counts"].items() if v],
            [v for v in outcomes["counts"].values() if v], title="Items by outcome",
        ),
    }  # fmt: skip
