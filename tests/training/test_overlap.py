"""Train and test never meet unseen: problems have a split (train, dev, test), batches and GRPO
draw from train by default, and an evaluation records its overlap with everything the evaluated
checkpoint was trained on (its SFT dataset, the runs behind its starting weights, GRPO problem
sets), flagged on the Evaluations page and in its export. Real tokenizer; the model's turns
are a SCRIPTED STAND-IN."""

from __future__ import annotations

import csv
import io
import json

import pytest

from curation import engine
from curation.engine.backends.scripted import ScriptedBackend
from tests.training.conftest import evaluate_scripted


@pytest.fixture
def splits(toy_problems):
    """toy-1 is a test problem, toy-2 a train problem, toy-3 a dev problem (set by a lead)."""
    from curation.services.problems import problem_split_set

    for problem, split in zip(toy_problems, ("test", "train", "dev"), strict=True):
        problem_split_set(problem=problem, split=split)
    return toy_problems


def _dataset_of(problem, endpoint, lead, tiny_model_path):
    """A frozen golden dataset holding one trajectory of ``problem``."""
    from transformers import AutoTokenizer

    from curation.models import Diagnosis
    from curation.services.datasets import dataset_freeze
    from curation.services.endpoints import rollout_config
    from curation.services.reviews import review_decide
    from curation.services.trajectories import trajectory_from_rollout

    backend = ScriptedBackend(
        AutoTokenizer.from_pretrained(tiny_model_path), lambda req, text: "</think>\n\\boxed{12}"
    )
    rollout = engine.rollout(backend, problem.question, rollout_config(endpoint))
    trajectory = trajectory_from_rollout(rollout, problem=problem, endpoint=endpoint)
    trajectory.save()
    Diagnosis.objects.create(trajectory=trajectory, endpoint=endpoint, status="ok", flawless=True)
    review_decide(trajectory=trajectory, decision="approved", by=lead)
    return dataset_freeze(name="golden", trajectories=[trajectory])


def test_an_evaluation_reports_its_overlap_with_the_checkpoints_training_data(
    settings, tmp_path, splits, tiny_endpoint, lead, client_for, tiny_model_path
):
    from training.services.runs import checkpoint_register, problems_select, run_create

    settings.VAR_DIR = tmp_path
    toy1, toy2, _ = splits
    # SFT on a golden set that holds the test problem toy-1, then GRPO on the train problems.
    dataset = _dataset_of(toy1, tiny_endpoint, lead, tiny_model_path)
    sft = run_create(kind="sft", name="sft", model=tiny_endpoint, preset="sft_tiny",
                     dataset=dataset, enqueue=False)  # fmt: skip
    after_sft = checkpoint_register(run=sft, checkpoint=str(tiny_model_path))
    grpo = run_create(kind="grpo", name="grpo", model=after_sft, preset="grpo_tiny",
                      problem_selection=problems_select(benchmarks=["toy"], splits=["train"]),
                      enqueue=False)  # fmt: skip
    assert grpo.problem_selection["problem_ids"] == [toy2.pk]
    after_grpo = checkpoint_register(run=grpo, checkpoint=str(tiny_model_path))

    evaluation = run_create(kind="evaluate", name="e", model=after_grpo, preset="eval_tiny",
                            problem_selection=problems_select(benchmarks=["toy"]),
                            enqueue=False)  # fmt: skip

    overlap = evaluation.overlap
    assert overlap["problems"] == 3 and overlap["overlap"] == 2
    assert overlap["problem_ids"] == sorted([toy1.pk, toy2.pk])
    assert overlap["splits"] == {"test": 1, "train": 1, "dev": 1}
    by_source = {src["kind"]: src for src in overlap["sources"]}
    assert by_source["dataset"]["dataset"] == dataset.pk  # the base run's dataset, one run back
    assert by_source["dataset"]["problem_ids"] == [toy1.pk]  # the test problem was trained on
    assert by_source["problems"]["run"] == grpo.pk
    assert by_source["problems"]["problem_ids"] == [toy2.pk]

    # Once its figures are in, the page and the export flag them.
    evaluate_scripted(evaluation, tiny_model_path)
    assert json.loads((tmp_path / "runs" / f"{evaluation.pk}-evaluate" / "overlap.json")
                      .read_text())["overlap"] == 2  # fmt: skip
    client = client_for(lead)
    page = client.get("/training/evaluations/").content.decode()
    assert "⚑ trained on 2" in page
    detail = client.get(evaluation.get_absolute_url()).content.decode()
    assert "trained on 2 of the 3 evaluated problems" in detail
    exported = client.get("/training/evaluations/export.csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    (toy_row,) = [r for r in rows if r["evaluation"] == str(evaluation.pk)]
    assert toy_row["trained_on_problems"] == "2"
    assert toy_row["flag"] == "checkpoint trained on 2 of these problems"


def test_no_overlap_is_reported_when_the_checkpoint_never_saw_the_problems(
    settings, tmp_path, splits, tiny_endpoint, lead, tiny_model_path
):
    from training.services.runs import checkpoint_register, problems_select, run_create

    settings.VAR_DIR = tmp_path
    toy1, _, _ = splits
    sft = run_create(kind="sft", name="sft", model=tiny_endpoint, preset="sft_tiny",
                     dataset=_dataset_of(toy1, tiny_endpoint, lead, tiny_model_path),
                     enqueue=False)  # fmt: skip
    checkpoint = checkpoint_register(run=sft, checkpoint=str(tiny_model_path))
    evaluation = run_create(kind="evaluate", name="e", model=checkpoint, preset="eval_tiny",
                            problem_selection=problems_select(benchmarks=["toy"],
                                                              splits=["dev"]),
                            enqueue=False)  # fmt: skip
    assert evaluation.overlap["overlap"] == 0 and evaluation.overlap["trained_here"]
    # The same question imported under another benchmark is the same problem.
    from curation.models import Benchmark, Problem

    copy = Problem.objects.create(
        benchmark=Benchmark.objects.create(name="Copy", slug="copy"), external_id="c1",
        question="  maximize 3x WITH 0 <= x <= 4. ", answer=12, content_hash="c",
    )  # fmt: skip
    again = run_create(kind="evaluate", name="e2", model=checkpoint, preset="eval_tiny",
                       problem_selection=problems_select(benchmarks=["copy"]),
                       enqueue=False)  # fmt: skip
    assert again.overlap["problem_ids"] == [copy.pk]


def test_overlap_is_avoided_by_default_batches_and_grpo_draw_from_train(
    splits, tiny_endpoint, client_for, lead, admin_user
):
    from curation.models import ModelEndpoint
    from training.forms import EvaluateForm, GRPOForm

    _, toy2, _ = splits
    both = ModelEndpoint.objects.create(name="both", backend="openai", model="m", role="both")
    client = client_for(lead)
    client.post("/batches/new", {
        "name": "b", "benchmarks": ["toy"], "seed": 0, "reasoner": both.pk,
        "intervener": both.pk, "samples_per_problem": 1, "max_interventions": 5,
        "answer_rule": "relative", "answer_tolerance": 1e-6, "concurrency": 1,
    })  # fmt: skip
    from curation.models import Batch

    batch = Batch.objects.get()
    assert [item.problem_id for item in batch.items.all()] == [toy2.pk]
    assert batch.selection["splits"] == ["train"]

    common = {"name": "r", "model": tiny_endpoint.pk, "benchmarks": ["toy"], "seed": 0}
    grpo = GRPOForm({**common, "preset": "grpo_tiny", "num_processes": 1})
    assert grpo.is_valid(), grpo.errors
    assert grpo.problem_selection_args()["splits"] == ["train"]
    evaluation = EvaluateForm({**common, "preset": "eval_tiny"})
    assert evaluation.is_valid(), evaluation.errors
    assert evaluation.problem_selection_args()["splits"] == []  # every split, overlap recorded


def test_no_overlap_by_accident_a_split_is_hashed_imported_or_set_by_a_lead(db, client_for, lead):
    from curation.formats.problem_files import parse_problem_file
    from curation.models import Problem
    from curation.models.problems import split_for
    from curation.services.problems import problems_import

    assert split_for("Maximize 3x.") == split_for("  maximize   3X. ")  # deterministic
    lines = [
        {"id": "a", "question": "Maximize 3x.", "answer": 1, "split": "test"},
        {"id": "b", "question": "Maximize 4x.", "answer": 1},
        {"id": "c", "question": "Maximize 5x.", "answer": 1, "split": "validation"},
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    problems_import(
        records=parse_problem_file(data, filename="set.jsonl", default_benchmark="Set").records
    )
    a, b, c = (Problem.objects.get(external_id=x) for x in "abc")
    assert (a.split, a.split_source) == ("test", "file")
    assert (b.split, b.split_source) == (split_for("Maximize 4x."), "hash")
    assert c.split == "dev"

    client_for(lead).post(f"/problems/{b.pk}/split", {"split": "test"})
    b.refresh_from_db()
    assert (b.split, b.split_source) == ("test", "lead")
    lines[1]["split"] = "train"  # a re-import does not undo the lead's choice
    data = "\n".join(json.dumps(line) for line in lines).encode()
    problems_import(
        records=parse_problem_file(data, filename="set.jsonl", default_benchmark="Set").records
    )
    b.refresh_from_db()
    assert b.split == "test"

    bad = json.dumps({"id": "d", "question": "q", "answer": 1, "split": "holdout"}).encode()
    from curation.formats.problem_files import ImportFileError

    with pytest.raises(ImportFileError, match="unknown split 'holdout'"):
        parse_problem_file(bad, filename="bad.jsonl", default_benchmark="Set")


def test_overlap_checks_start_from_the_problem_list_filtered_by_split(splits, client_for, reviewer):
    toy1, toy2, _ = splits
    page = client_for(reviewer).get("/?split=test").content.decode()
    assert toy1.external_id in page and toy2.external_id not in page
    assert '<td class="split">test</td>' in page
