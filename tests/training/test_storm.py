"""STORM in miniature on the tiny model: the whole cycle through the product's own services
(batch, approvals, frozen golden set, a real SFT run, the checkpoint served, evaluations
before and after, GRPO), and ``manage.py storm_bench --json`` on fresh state. The CALM
batch's Reasoner and Intervener are SCRIPTED STAND-INS (a random model writes no golden
data); every training, serving and evaluation step runs the real tiny model."""

from __future__ import annotations

import json

import pytest

from curation.models import Benchmark, DatasetVersion, Problem, ReviewDecision
from training.models import TrainingRun
from training.services.overlap import checkpoint_lineage
from training.services.storm import (
    BENCH_USER,
    StormLog,
    StormOptions,
    storm_run,
    tiny_endpoints,
    tiny_options,
    train_pool,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def split_problems(db, toy_problems):
    """Train: the three toy problems; test: two others, one of them the same question as
    toy-3 in another benchmark (it must leave the train pool)."""
    other = Benchmark.objects.create(name="Held out", slug="held-out")
    test = [
        Problem.objects.create(benchmark=other, external_id="h-1", answer=21.0,
                               question="Maximize 7x with 0 <= x <= 3.", content_hash="h1"),
        Problem.objects.create(benchmark=other, external_id="h-2", answer=6.0,
                               question=toy_problems[2].question.upper(), content_hash="h2"),
    ]  # fmt: skip
    return toy_problems, test


def test_storm_cycle_on_the_tiny_model_through_the_products_services(
    settings, tmp_path, tiny_model_path, split_problems, client_for, admin_user
):
    settings.VAR_DIR = tmp_path  # the frozen dataset's folder
    train, test = split_problems
    pool = train_pool(train, test)
    base, reasoner, intervener = tiny_endpoints(model_dir=tiny_model_path, problems=pool)
    options = StormOptions(
        train_problems=train, test_problems=test, reasoner=reasoner, intervener=intervener,
        base_model=base, max_interventions=1, grpo_steps=1,
        **tiny_options(pool_size=len(pool)),
    )  # fmt: skip
    lines = []
    done = []
    result = storm_run(options=options, advance=done.append, log=StormLog(echo=lines.append))
    s, ids = result["summary"], result["lineage"]

    assert done == ["split", "curate", "approve", "freeze", "sft", "serve", "evaluate", "grpo"]
    # 1. The split is recorded; toy-3's question is a test question, so it left the pool.
    assert (s["train_problems"], s["test_problems"], s["dropped_from_train"]) == (2, 2, 1)
    assert s["train_test_overlap"] == 0
    assert {p.split for p in Problem.objects.filter(pk__in=[p.pk for p in test])} == {"test"}
    assert set(Problem.objects.filter(pk__in=[p.pk for p in pool]).values_list(
        "split", flat=True)) == {"train"}  # fmt: skip
    # 2-3. Both golden candidates approved by the bench's named user, frozen.
    assert s["golden_records"] == 2 and s["approved"] == 2
    decisions = ReviewDecision.objects.filter(trajectory__problem__in=pool)
    assert {d.author.username for d in decisions} == {BENCH_USER}
    dataset = DatasetVersion.objects.get(pk=ids["dataset"])
    assert dataset.created_by.username == BENCH_USER and dataset.prompts.get("id")
    # 4-5. A real SFT run on that dataset; its checkpoint served as an endpoint.
    sft = TrainingRun.objects.get(pk=ids["sft_run"])
    assert (sft.kind, sft.dataset_id, sft.outcome, sft.step) == ("sft", dataset.pk, "completed", 2)
    assert sft.endpoint_id == ids["endpoint"] and s["served_as"] == "transformers"
    assert 0 < s["sft_minutes"] <= s["sft_wall_minutes"] and s["sft_peak_rss_mib"] > 0
    # 6. Base and trained evaluated on the test problems under one preset and rule.
    base_eval = TrainingRun.objects.get(pk=ids["base_evaluation"])
    trained_eval = TrainingRun.objects.get(pk=ids["trained_evaluation"])
    assert base_eval.model_id == base.pk and trained_eval.model_id == sft.endpoint_id
    assert base_eval.config["k"] == trained_eval.config["k"]
    assert base_eval.preset == trained_eval.preset == "eval_tiny"
    for figures in (s["base"], s["trained"]):
        assert 0 <= figures["pass_at_1"] <= 1 and figures["samples"] == 2
        low, high = figures["pass_at_1_ci95"]
        assert low <= figures["pass_at_1"] <= high and high - low > 0.3  # two samples: wide
        assert figures["response_tokens"] > 0 and figures["code_blocks"] >= 0
    # The lineage: evaluation -> endpoint -> SFT run -> dataset, traced by the product.
    assert [r.pk for r in checkpoint_lineage(trained_eval.model)] == [sft.pk]
    assert trained_eval.overlap["sources"][0]["dataset"] == dataset.pk
    client = client_for(admin_user)
    sft_page = client.get(sft.get_absolute_url()).content.decode()
    assert dataset.get_absolute_url() in sft_page and sft.endpoint.name in sft_page
    eval_page = client.get(trained_eval.get_absolute_url()).content.decode()
    assert dataset.get_absolute_url() in eval_page
    # 7. GRPO ran from the SFT checkpoint on the train pool only.
    grpo = TrainingRun.objects.get(pk=ids["grpo_run"])
    assert grpo.model_id == sft.endpoint_id and s["grpo_steps"] == grpo.step >= 1
    assert sorted(grpo.problem_selection["problem_ids"]) == sorted(p.pk for p in pool)
    assert any("sft" in line and "done" in line for line in lines)


def test_storm_bench_json_on_the_tiny_model_on_fresh_state(tmp_path, tiny_model_path, capsys):
    from django.core.management import call_command

    out = tmp_path / "record"
    call_command(
        "storm_bench", "--tiny", "--tiny-model", str(tiny_model_path), "--limit-train", "3",
        "--limit-test", "2", "--grpo-steps", "1", "--workdir", str(tmp_path / "work"),
        "--out", str(out), "--json",
    )  # fmt: skip
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    keys = ("golden_records", "train_test_overlap", "test_problems", "base_pass_at_1",
            "trained_pass_at_1", "served_as", "sft_minutes", "grpo_steps", "minutes")  # fmt: skip
    assert set(keys) <= set(printed)
    assert printed["train_test_overlap"] == 0 and printed["golden_records"] >= 1
    assert 0 <= printed["base_pass_at_1"] <= 1 and 0 <= printed["trained_pass_at_1"] <= 1
    assert printed["grpo_steps"] >= 1 and printed["test_problems"] >= 1
    assert printed["served_as"] == "transformers" and printed["minutes"] > 0
    # The record kept for docs/bench: the figures and the step log.
    kept = json.loads((out / "summary.json").read_text())
    assert kept["summary"] == printed
    assert "sft" in (out / "steps.log").read_text()
    # Fresh state: the bench's own database, not the test database.
    assert not Problem.objects.exists()


def test_storm_bench_without_trainable_weights_says_how_to_make_them(tmp_path, monkeypatch):
    from django.core.management import CommandError, call_command

    monkeypatch.setenv("CALM_MODEL_CACHE", str(tmp_path / "models"))  # nothing prepared there
    monkeypatch.delenv("CALM_LOCAL_MODEL", raising=False)
    with pytest.raises(CommandError) as error:
        call_command("storm_bench", "--here", "--limit-train", "1")
    message = str(error.value)
    assert "no trainable weights" in message and "--base-model" in message
    assert "python manage.py prepare_model" in message  # the GGUF itself is missing too
    assert "python -m curation.engine.serving.trainable" in message
    (tmp_path / "models").mkdir()
    from curation.engine.serving import local_model

    local_model.model_path(local_model.get_model()).write_bytes(b"GGUF")
    with pytest.raises(CommandError) as error:
        call_command("storm_bench", "--here", "--limit-train", "1")
    assert "prepare_model" not in str(error.value)  # only the trainable weights are missing


@pytest.mark.django_db(transaction=True)
def test_storm_bench_with_a_model_that_writes_no_golden_data_stops_at_the_freeze(
    tmp_path, tiny_model_path, settings
):
    """The real-endpoint path (a local Reasoner, --base-model): the tiny random model as both
    models writes no golden trajectory, and the command says which step stopped and why."""
    from django.core.management import CommandError, call_command

    from curation.models import Batch, ModelEndpoint

    settings.VAR_DIR = tmp_path
    with pytest.raises(CommandError) as error:
        call_command(
            "storm_bench", "--here", "--reasoner", str(tiny_model_path), "--base-model",
            str(tiny_model_path), "--limit-train", "1", "--limit-test", "1",
            "--max-interventions", "0", "--json",
        )  # fmt: skip
    assert str(error.value).startswith("freeze: the batch gave no golden trajectory")
    (batch,) = Batch.objects.all()
    assert batch.reasoner == batch.intervener and batch.reasoner.role == "both"
    assert batch.reasoner.backend == "transformers"
    base = ModelEndpoint.objects.get(name__endswith="(storm_bench base)")
    assert base.model == str(tiny_model_path) and base.extra == {"device": "cpu"}
    assert not TrainingRun.objects.exists()  # nothing trained on nothing
