"""Statistics against hand-computed values on small fixtures (no database)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from curation.presentation import statistics

# --------------------------------------------------------------------------------------------
# token modification ratio


def test_it_pools_hint_tokens_over_all_generated_tokens():
    trajectories = [
        {"n_model_tokens": 970, "n_hint_tokens": 30},
        {"n_model_tokens": 2000, "n_hint_tokens": 0},
        {"n_model_tokens": 0, "n_hint_tokens": None},
    ]
    # 30 / (970 + 30 + 2000) = 0.01
    assert statistics.token_modification_ratio(trajectories) == pytest.approx(0.01)


def test_it_reads_dataclass_records_too():
    @dataclass
    class Row:
        n_model_tokens: int
        n_hint_tokens: int

    assert statistics.token_modification_ratio([Row(75, 25)]) == pytest.approx(0.25)


def test_it_gives_no_ratio_without_tokens():
    assert statistics.token_modification_ratio([]) is None
    assert statistics.token_modification_ratio([{"n_model_tokens": 0, "n_hint_tokens": 0}]) is None


def test_it_summarises_the_ratio_per_trajectory():
    trajectories = [{"n_model_tokens": 100 - k, "n_hint_tokens": k} for k in range(1, 11)]
    trajectories.append({"n_model_tokens": 0, "n_hint_tokens": 0})  # undefined: left out
    summary = statistics.token_modification_ratio_per_trajectory(trajectories)
    assert summary["n"] == 10
    assert summary["values"] == pytest.approx([k / 100 for k in range(1, 11)])
    assert summary["mean"] == pytest.approx(0.055)
    assert summary["median"] == pytest.approx(0.055)
    assert summary["p90"] == pytest.approx(0.091)  # numpy's linear: 0.09 + 0.1 × 0.01
    assert summary["max"] == pytest.approx(0.10)


def test_it_summarises_an_empty_input_as_nones():
    summary = statistics.token_modification_ratio_per_trajectory([])
    assert summary == {"values": [], "n": 0, "mean": None, "median": None, "p90": None, "max": None}


# --------------------------------------------------------------------------------------------
# flaw distribution

CD, DK = "computation-driven", "domain knowledge"


def test_it_counts_and_shares_flaws_by_benchmark():
    labels = [
        {"benchmark": "NL4Opt", "category": CD, "flaw_type": "manual_computation"},
        {"benchmark": "NL4Opt", "category": CD, "flaw_type": "manual_computation"},
        {"benchmark": "NL4Opt", "category": CD, "flaw_type": "delayed_code_use"},
        {"benchmark": "NL4Opt", "category": DK, "flaw_type": "incorrect_formulation"},
        {"benchmark": "IndustryOR", "category": DK, "flaw_type": "incorrect_formulation"},
        {"benchmark": "IndustryOR", "category": None, "flaw_type": None},  # "no flaw": ignored
    ]
    taxonomy = ["manual_computation", "delayed_code_use", "incorrect_formulation", "wrong_domain"]
    d = statistics.flaw_distribution(
        labels, flaw_types=taxonomy, categories=[CD, DK], benchmarks=["NL4Opt", "IndustryOR"]
    )
    assert d["benchmarks"] == ["NL4Opt", "IndustryOR"]
    assert d["flaw_types"] == taxonomy  # taxonomy order, unseen types kept
    assert d["benchmark_totals"] == [4, 1]
    assert d["by_flaw_type"]["counts"]["manual_computation"] == [2, 0]
    assert d["by_flaw_type"]["counts"]["wrong_domain"] == [0, 0]
    assert d["by_flaw_type"]["shares"]["manual_computation"] == [0.5, 0.0]
    assert d["by_category"]["counts"] == {CD: [3, 0], DK: [1, 1]}
    assert d["by_category"]["shares"] == {CD: [0.75, 0.0], DK: [0.25, 1.0]}
    assert d["totals"]["n"] == 5
    assert d["totals"]["categories"] == {CD: 3, DK: 2}
    assert d["totals"]["category_shares"] == {CD: 0.6, DK: 0.4}
    assert d["totals"]["flaw_type_shares"]["incorrect_formulation"] == 0.4
    json.dumps(d)


def test_it_orders_unlisted_names_alphabetically_and_shares_none_without_flaws():
    labels = [
        {"benchmark": "b", "category": DK, "flaw_type": "z"},
        {"benchmark": "a", "category": CD, "flaw_type": "y"},
    ]
    d = statistics.flaw_distribution(labels, benchmarks=["empty"])
    assert d["benchmarks"] == ["empty", "a", "b"]
    assert d["flaw_types"] == ["y", "z"]
    assert d["by_flaw_type"]["shares"]["y"] == [None, 1.0, 0.0]


def test_it_handles_an_empty_distribution():
    d = statistics.flaw_distribution([])
    assert d["benchmarks"] == [] and d["totals"]["n"] == 0
    assert d["totals"]["flaw_type_shares"] == {}


# --------------------------------------------------------------------------------------------
# fixes per round


def test_it_counts_fixes_per_round_and_cumulatively():
    records = [
        {"round": 1, "fixed": True, "correct_before": False, "correct_after": True},
        {"round": 1, "fixed": False, "correct_before": False, "correct_after": False},
        {"round": 1, "fixed": False, "correct_before": True, "correct_after": False},
        {"round": 1, "fixed": False, "correct_before": True, "correct_after": True},
        {"round": 3, "fixed": None, "correct_before": False, "correct_after": True},  # derived
    ]
    result = statistics.fixes_per_round(records)
    one, two, three = result["rounds"]
    assert one == {
        "round": 1,
        "interventions": 4,
        "fixed": 1,
        "fix_rate": 0.25,
        "incorrect_before": 2,
        "fix_rate_of_incorrect": 0.5,
        "broken": 1,
        "cumulative_interventions": 4,
        "cumulative_fixed": 1,
        "cumulative_fix_rate": 0.25,
    }
    assert two["interventions"] == 0 and two["fix_rate"] is None  # empty round listed
    assert two["cumulative_fix_rate"] == 0.25
    assert three["fixed"] == 1 and three["cumulative_fixed"] == 2
    assert three["cumulative_fix_rate"] == pytest.approx(0.4)
    assert result["total"]["fix_rate_of_incorrect"] == pytest.approx(2 / 3)


def test_it_gives_no_rounds_for_no_interventions():
    assert statistics.fixes_per_round([]) == {
        "rounds": [],
        "total": {
            "interventions": 0,
            "fixed": 0,
            "fix_rate": None,
            "incorrect_before": 0,
            "fix_rate_of_incorrect": None,
            "broken": 0,
        },
    }


def test_it_rejects_a_zero_based_round():
    with pytest.raises(ValueError, match="1-based"):
        statistics.fixes_per_round([{"round": 0, "fixed": False}])


# --------------------------------------------------------------------------------------------
# golden yield


def test_it_computes_golden_yield_over_finished_items():
    outcomes = ["approved"] * 2 + ["candidate", "rejected", "wrong_flawless", "cap_reached"]
    outcomes += ["error", "running", "waiting", "mystery"]
    result = statistics.golden_yield([{"outcome": o} for o in outcomes])
    assert result["counts"]["approved"] == 2 and result["counts"]["mystery"] == 1
    assert result["total"] == 10
    assert result["finished"] == 7
    assert result["pending"] == 2
    assert result["unknown"] == 1
    assert result["candidates"] == 4  # candidate + approved + rejected
    assert result["candidate_rate"] == pytest.approx(4 / 7)
    assert result["approved_rate"] == pytest.approx(2 / 7)


def test_it_gives_no_yield_before_anything_finishes():
    result = statistics.golden_yield([{"outcome": "running"}])
    assert result["candidate_rate"] is None and result["approved_rate"] is None
    assert set(statistics.GOLDEN_OUTCOMES) <= set(result["counts"])


# --------------------------------------------------------------------------------------------
# per model


def test_it_summarises_code_blocks_length_and_accuracy_per_model():
    def t(model, code, model_tokens, hint, interp, correct):
        return {
            "model": model,
            "n_code_calls": code,
            "n_model_tokens": model_tokens,
            "n_hint_tokens": hint,
            "n_interpreter_tokens": interp,
            "is_correct": correct,
        }

    rows = [
        t("storm-4b", 3, 900, 100, 50, True),
        t("storm-4b", 5, 1500, 0, 80, False),
        t("storm-4b", 4, 1200, 0, 70, None),  # not graded
        t("base-4b", 1, 4000, 0, 10, True),
    ]
    result = statistics.per_model(rows)
    assert "model + hint" in result["response_length"]
    base, storm = result["models"]  # sorted by name
    assert base["model"] == "base-4b" and base["accuracy"] == 1.0
    assert storm["n"] == 3
    assert storm["code_blocks_mean"] == 4 and storm["code_blocks_median"] == 4
    assert storm["response_length_mean"] == pytest.approx((1000 + 1500 + 1200) / 3)
    assert storm["response_length_median"] == 1200
    assert storm["interpreter_tokens_mean"] == pytest.approx(200 / 3)
    assert (storm["n_graded"], storm["n_correct"], storm["accuracy"]) == (2, 1, 0.5)


def test_it_gives_no_models_for_no_trajectories():
    assert statistics.per_model([])["models"] == []


def test_it_gives_no_accuracy_when_nothing_is_graded():
    row = {"model": "m", "n_code_calls": 1, "n_model_tokens": 10, "is_correct": None}
    assert statistics.per_model([row])["models"][0]["accuracy"] is None


# --------------------------------------------------------------------------------------------
# Cohen's kappa and the confusion matrix


def _pairs(counts):
    """Expand {(a, b): n} into a list of n copies of (a, b)."""
    return [pair for pair, n in counts.items() for _ in range(n)]


def test_it_matches_the_textbook_kappa():
    # Wikipedia's worked example: 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15.
    # p_o = 0.7, p_e = 0.5 × 0.6 + 0.5 × 0.4 = 0.5, κ = 0.2 / 0.5 = 0.4.
    pairs = _pairs({("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15})
    assert statistics.cohen_kappa(pairs) == pytest.approx(0.4)


def test_it_treats_no_flaw_as_a_category():
    # p_o = 3/4; a: {None: 2, f: 2}, b: {None: 1, f: 3}; p_e = (2 + 6) / 16 = 0.5; κ = 0.5
    pairs = [(None, None), (None, "f"), ("f", "f"), ("f", "f")]
    assert statistics.cohen_kappa(pairs) == pytest.approx(0.5)


def test_it_gives_one_for_perfect_agreement():
    assert statistics.cohen_kappa([("a", "a"), ("b", "b"), (None, None)]) == pytest.approx(1.0)
    # one category only: p_e = 1, κ is 0/0; the convention is 1.0
    assert statistics.cohen_kappa([(None, None)] * 4) == 1.0


def test_it_gives_zero_at_chance_level():
    # each rater says "a" half the time, independently: p_o = p_e = 0.5
    pairs = _pairs({("a", "a"): 1, ("a", "b"): 1, ("b", "a"): 1, ("b", "b"): 1})
    assert statistics.cohen_kappa(pairs) == pytest.approx(0.0)


def test_it_gives_no_kappa_without_pairs():
    assert statistics.cohen_kappa([]) is None


def test_it_puts_the_first_rater_on_rows():
    pairs = [("x", "y"), ("x", "y"), ("y", "y"), (None, "x")]
    result = statistics.confusion_matrix(pairs, [None, "x", "y"])
    assert result["categories"] == [None, "x", "y"]
    assert result["labels"] == ["no flaw", "x", "y"]
    assert result["matrix"] == [
        [0, 1, 0],  # first rater None: second said x once
        [0, 0, 2],  # first rater x: second said y twice
        [0, 0, 1],
    ]


def test_it_appends_unlisted_categories_in_order_of_appearance():
    result = statistics.confusion_matrix([("b", "a")], ["z"])
    assert result["categories"] == ["z", "b", "a"]
    assert result["matrix"][1][2] == 1
    assert statistics.confusion_matrix([]) == {"categories": [], "labels": [], "matrix": []}


# --------------------------------------------------------------------------------------------
# step-aligned agreement


def _label(traj, step, author, flaw, source="human", at=None):
    record = {
        "trajectory_id": traj,
        "step_index": step,
        "author": author,
        "source": source,
        "flaw_type": flaw,
    }
    if at is not None:
        record["created_at"] = at
    return record


def test_it_aligns_human_and_model_labels_by_step():
    labels = [
        # trajectory 1: both looked; they agree on step 2, the human also flags step 4
        _label(1, 2, "model:1", "manual", "model"),
        _label(1, 2, "user:a", "manual"),
        _label(1, 4, "user:a", "domain"),
        # trajectory 2: only the model looked (no human review): not a unit
        _label(2, 0, "model:1", "manual", "model"),
        # trajectory 3: the human cleared a step the model flagged
        _label(3, 1, "model:1", "domain", "model"),
        _label(3, 1, "user:a", None),
    ]
    result = statistics.agreement(labels, left={"source": "human"}, right={"source": "model"})
    assert result["pairs"] == 3
    assert result["rater_pairs"] == 1
    confusion = result["confusion"]
    assert confusion["categories"] == ["manual", "domain", None]  # order of appearance
    # rows = human: (manual, manual), (domain, None), (None, domain)
    assert confusion["matrix"] == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert result["observed_agreement"] == pytest.approx(1 / 3)
    # p_e = 3 × (1/3 × 1/3) = 1/3, so κ = 0
    assert result["kappa"] == pytest.approx(0.0)


def test_it_counts_a_reviewed_trajectory_without_labels_as_no_flaw():
    labels = [_label(2, 0, "model:1", "manual", "model")]
    human, model = {"source": "human"}, {"source": "model"}
    without = statistics.agreement(labels, left=human, right=model)
    assert without["pairs"] == 0 and without["kappa"] is None
    # user:a read trajectory 2 and flagged nothing: their silence is a "no flaw" on step 0
    reviewed = [{"trajectory_id": 2, "author": "user:a", "source": "human"}]
    result = statistics.agreement(labels, left=human, right=model, reviewed=reviewed)
    assert result["pairs"] == 1 and result["rater_pairs"] == 1
    assert result["confusion"]["categories"] == [None, "manual"]
    assert result["confusion"]["matrix"] == [[0, 1], [0, 0]]
    assert result["kappa"] == pytest.approx(0.0)  # p_o = 0, p_e = 0


def test_it_accepts_a_predicate_as_selector():
    labels = [_label(1, 0, "user:a", "manual"), _label(1, 0, "model:1", "manual", "model")]
    result = statistics.agreement(
        labels, left=lambda r: r["author"] == "user:a", right=lambda r: r["source"] == "model"
    )
    assert result["pairs"] == 1 and result["kappa"] == 1.0


def test_it_keeps_only_the_current_label_per_author_and_step():
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    labels = [
        _label(1, 0, "user:a", "manual", at=t0 + timedelta(minutes=5)),
        _label(1, 0, "user:a", "domain", at=t0),  # older, listed later: history
        _label(1, 0, "user:b", "manual", at=t0),
    ]
    result = statistics.agreement(labels, left={"author": "user:a"}, right={"author": "user:b"})
    assert result["pairs"] == 1 and result["kappa"] == 1.0


def test_it_pairs_two_named_reviewers():
    labels = [
        _label(1, 0, "user:a", "manual"),
        _label(1, 0, "user:b", "manual"),
        _label(1, 3, "user:b", "domain"),
        _label(1, 3, "model:1", "domain", "model"),
    ]
    result = statistics.agreement(labels, left={"author": "user:a"}, right={"author": "user:b"})
    assert result["pairs"] == 2
    assert result["confusion"]["categories"] == ["manual", None, "domain"]


def test_it_computes_pairwise_reviewer_agreement():
    labels = [
        _label(1, 0, "user:a", "manual"),
        _label(1, 0, "user:b", "manual"),
        _label(1, 2, "user:a", "domain"),
        _label(1, 2, "user:b", None),
        _label(2, 0, "user:c", "manual"),  # c shares no trajectory with a or b
        _label(1, 0, "model:1", "domain", "model"),  # not a human reviewer
    ]
    rows = statistics.reviewer_agreement(labels)
    assert rows == [
        {
            "a": "user:a",
            "b": "user:b",
            "pairs": 2,
            "shared_steps": 2,
            "observed_agreement": 0.5,
            # a: {manual 1, domain 1}, b: {manual 1, None 1}: p_e = 1/4, κ = (1/2 − 1/4) / (3/4)
            "kappa": pytest.approx(1 / 3),
            "kappa_ci": None,  # too few pairs for an interval
        }
    ]
    assert statistics.reviewer_agreement([]) == []


# --------------------------------------------------------------------------------------------
# throughput


def test_it_estimates_rate_and_eta_over_the_recent_window():
    # 10 early items, then the last 5 finish 10 s apart: the window of 5 sees 4 intervals / 40 s
    times = [float(k) for k in range(10)] + [100.0, 110.0, 120.0, 130.0, 140.0]
    result = statistics.throughput_eta(times, remaining=30, window=5)
    assert result["rate_per_s"] == pytest.approx(0.1)
    assert result["eta_seconds"] == pytest.approx(300.0)
    assert result["window_items"] == 5


def test_it_accepts_datetimes_in_any_order():
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    times = [t0 + timedelta(seconds=s) for s in (60, 0, 30)]
    result = statistics.throughput_eta(times, remaining=4)
    assert result["rate_per_s"] == pytest.approx(2 / 60)
    assert result["eta_seconds"] == pytest.approx(120.0)


@pytest.mark.parametrize("times", [[], [5.0], [5.0, 5.0]])
def test_it_gives_no_eta_without_an_interval(times):
    result = statistics.throughput_eta(times, remaining=3)
    assert result["rate_per_s"] is None and result["eta_seconds"] is None


def test_it_gives_zero_eta_when_nothing_remains():
    assert statistics.throughput_eta([], remaining=0)["eta_seconds"] == 0.0


def test_it_rejects_negative_remaining():
    with pytest.raises(ValueError):
        statistics.throughput_eta([], remaining=-1)
