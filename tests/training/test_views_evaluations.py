"""The Evaluations page: each figure with what it was judged under, never two rules or modes
in one column unless asked (and then marked), re-judging by a lead."""

from __future__ import annotations

import pytest

from tests.training.conftest import evaluate_scripted
from training.models import EvaluationScore
from training.services.evaluations import evaluation_rejudge
from training.services.runs import problems_select, run_create

pytestmark = pytest.mark.django_db


def _table_text(response) -> str:
    html = response.content.decode()
    return html[html.index('id="evaluation-table"') :]


def test_it_shows_the_rule_mode_counts_and_set_hash_beside_each_figure(
    client_for, lead, finished_eval
):
    response = client_for(lead).get("/training/evaluations/")
    table = _table_text(response)
    assert "sirl · pass@1" in table and "33.3" in table
    assert "✗2 ∅2 ⚠0" in table  # wrong, no answer, endpoint errors
    sha = finished_eval.results["record"]["problem_set"]["sha256"]
    assert sha[:12] in table and "T 0.6, top-p 0.95" in table


def test_it_refuses_to_mix_rules_in_a_column_unless_asked_and_then_marks_them(
    client_for, lead, finished_eval, tiny_endpoint, tiny_model_path
):
    other = run_create(
        kind="evaluate", name="o", model=tiny_endpoint, preset="eval_tiny",
        problem_selection=problems_select(benchmarks=["toy"]), enqueue=False,
    )  # fmt: skip
    evaluate_scripted(other, tiny_model_path, rule="orlm")  # the newest: its rule leads
    client = client_for(lead)

    table = _table_text(client.get("/training/evaluations/"))
    assert f"eval #{other.pk}" in table and f"eval #{finished_eval.pk}" not in table
    page = client.get("/training/evaluations/").content.decode()
    assert 'id="hidden-rules"' in page and "1 under sirl · pass@1" in page

    table = _table_text(client.get("/training/evaluations/", {"rule": "sirl · pass@1"}))
    assert f"eval #{finished_eval.pk}" in table and f"eval #{other.pk}" not in table

    mixed = client.get("/training/evaluations/", {"rule": "orlm · pass@1", "mix": "1"})
    table = _table_text(mixed)
    assert f"eval #{other.pk}" in table and f"eval #{finished_eval.pk}" in table
    assert table.count('class=" rule-differs"') == 1 and "≠33.3" in table
    assert "66.7" in table and "≠66.7" not in table


def test_a_rejudged_figure_is_its_own_row_and_not_mixed_by_default(client_for, lead, finished_eval):
    evaluation_rejudge(run=finished_eval, rule="orlm")
    client = client_for(lead)
    table = _table_text(client.get("/training/evaluations/"))
    assert "66.7" not in table and "re-judged" not in table
    table = _table_text(client.get("/training/evaluations/", {"rule": "orlm · pass@1"}))
    assert "66.7" in table and "re-judged" in table


@pytest.mark.parametrize(("persona", "status"), [("reviewer", 403), ("lead", 302)])
def test_a_lead_rejudges_from_the_page_and_a_reviewer_may_not(
    request, client_for, finished_eval, persona, status
):
    client = client_for(request.getfixturevalue(persona))
    url = f"/training/evaluations/{finished_eval.pk}/rejudge"
    response = client.post(url, {"rule": "storm-paper", "tolerance": "0.05"})
    assert response.status_code == status
    made = EvaluationScore.objects.filter(run=finished_eval, rejudged=True)
    assert made.count() == (1 if persona == "lead" else 0)
    if persona == "lead":
        assert made.get().rule_label == "storm-paper (ε=0.05)"
        assert client.get(url).status_code == 405


def test_a_bad_rejudge_request_is_a_clear_message_and_changes_nothing(
    client_for, lead, finished_eval
):
    client = client_for(lead)
    url = f"/training/evaluations/{finished_eval.pk}/rejudge"
    response = client.post(url, {"rule": "storm-paper", "tolerance": "lots"}, follow=True)
    assert "Not re-judged" in response.content.decode()
    response = client.post(url, {"rule": "sirl"}, follow=True)
    assert "judged under sirl already" in response.content.decode()
    for unbounded in ("1e308", "nan", "-0.5"):  # 1e308 would judge every answer correct
        response = client.post(url, {"rule": "storm-paper", "tolerance": unbounded}, follow=True)
        assert "tolerance must be a number from 0 to 0.1" in response.content.decode()
    assert not EvaluationScore.objects.filter(run=finished_eval, rejudged=True).exists()


def test_it_plots_calibration_for_evaluations_that_stated_confidences(
    client_for, lead, tiny_endpoint, toy_problems, tiny_model_path
):
    run = run_create(
        kind="evaluate", name="c", model=tiny_endpoint, preset="eval_tiny",
        problem_selection=problems_select(benchmarks=["toy"]), enqueue=False,
    )  # fmt: skip
    replies = {
        "<= 4.": "</think>\n\\boxed{12} <confidence>0.9</confidence>",  # right
        "<= 5.": "</think>\n\\boxed{14} <confidence>0.9</confidence>",  # wrong
        "<= 2.": "</think>\n\\boxed{6} <confidence>0.2</confidence>",  # right
    }
    evaluate_scripted(run, tiny_model_path, replies=replies, ask_confidence=True)
    score = EvaluationScore.objects.get(run=run)
    # ((0.1)² · 2 + (0.9)² · 2 + (0.8)² · 2) / 6
    assert score.brier == pytest.approx((0.01 + 0.81 + 0.64) / 3)
    assert score.confidences == 6
    page = client_for(lead).get("/training/evaluations/").content.decode()
    section = page[page.index('id="calibration"') :]
    assert "0.487" in section and "Reliability" in section and "<svg" in section
    # the 0.9 bin is half right, the 0.2 bin all right
    assert "0.90 → 0.50 (4)" in section and "0.20 → 1.00 (2)" in section


def test_the_calibration_section_says_when_no_evaluation_stated_confidences(
    client_for, lead, finished_eval
):
    page = client_for(lead).get("/training/evaluations/").content.decode()
    assert "No evaluation asked for confidences yet" in page


def test_an_evaluation_is_launched_with_the_chosen_rule_mode_and_confidence_request(
    client_for, admin_user, tiny_endpoint, toy_problems
):
    from training.models import TrainingRun

    data = {"name": "e", "model": tiny_endpoint.pk, "benchmarks": ["toy"], "preset": "eval_tiny",
            "overrides": "", "rule": "storm-paper", "tolerance": "0.001", "mode": "any",
            "ask_confidence": "true", "seed": 0, "action": "launch"}  # fmt: skip
    response = client_for(admin_user).post("/training/new/evaluate", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    run = TrainingRun.objects.get(name="e")
    assert run.config["rule"] == "storm-paper" and run.config["tolerance"] == 0.001
    assert run.config["mode"] == "any" and run.config["ask_confidence"] is True
    data.update(name="f", rule="", tolerance="", mode="", ask_confidence="unknown")
    client_for(admin_user).post("/training/new/evaluate", data)
    kept = TrainingRun.objects.get(name="f").config
    assert "rule" not in kept and "ask_confidence" not in kept  # the preset's (script default)


def test_it_keeps_any_of_k_figures_out_of_a_pass_at_1_column(finished_eval, tiny_endpoint):
    from training.selectors import evaluation_table

    older = run_create(
        kind="evaluate", name="any", model=tiny_endpoint, preset="eval_tiny",
        problem_selection=problems_select(benchmarks=["toy"]), enqueue=False,
    )  # fmt: skip
    older.created_at = finished_eval.created_at.replace(year=2000)
    older.save(update_fields=["created_at"])
    EvaluationScore.objects.create(
        run=older, benchmark="Toy", rule="sirl", rule_label="sirl", mode="any",
        problems=3, samples=6, pass_at_1=1 / 3, any_of_k=2 / 3,
    )  # fmt: skip
    table = evaluation_table(judged_as="sirl · pass@1")
    ours = [row for row in table.rows if row.run]
    assert [row.judged_as for row in ours] == ["sirl · pass@1"]
    assert table.hidden == {"sirl · any of k": 1}
    mixed = evaluation_table(judged_as="sirl · pass@1", mix=True)
    assert [(r.judged_as, r.marked) for r in mixed.rows if r.run] == [
        ("sirl · pass@1", False), ("sirl · any of k", True),
    ]  # fmt: skip


def test_the_papers_per_benchmark_figures_carry_the_column_order_caveat(
    client_for, lead, finished_eval
):
    page = client_for(lead).get("/training/evaluations/").content.decode()
    assert 'title="per-benchmark paper figures: column order inferred' in page
    assert ">67.9*<" in page  # NL4Opt, base: marked
    assert "<strong>57.1</strong>" in page  # the macro average: the paper's, unmarked
    assert "the macro averages are the paper" in page
