"""A golden set is one model's data: every trajectory records the tokenizer that made its ids
and the prompts it was made with; freezing refuses a mix of tokenizers, or freezes one set per
tokenizer when the lead asks for that. The ids come from real tokenizers (two tiny models with
different vocabularies); the model turns are a SCRIPTED STAND-IN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation import engine
from curation.engine.backends.scripted import ScriptedBackend
from curation.engine.fingerprint import tokenizer_fingerprint
from tests.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def other_model_path(tmp_path_factory):
    """A second tiny model whose vocabulary differs from ``tiny_model_path``'s."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-other") / "model", vocab_size=520)


def _tokenizer(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _golden_from(path, problem, lead, name: str):
    """A golden trajectory generated through the engine with the tokenizer at ``path``."""
    from curation.models import Diagnosis, ModelEndpoint
    from curation.services.endpoints import rollout_config
    from curation.services.reviews import review_decide
    from curation.services.trajectories import trajectory_from_rollout

    endpoint = ModelEndpoint.objects.create(
        name=name, backend="transformers", model=str(path), role="reasoner"
    )
    backend = ScriptedBackend(_tokenizer(path), lambda req, text: "</think>\n\\boxed{4100}")
    rollout = engine.rollout(backend, problem.question, rollout_config(endpoint))
    trajectory = trajectory_from_rollout(rollout, problem=problem, endpoint=endpoint)
    trajectory.save()
    Diagnosis.objects.create(trajectory=trajectory, endpoint=endpoint, status="ok", flawless=True)
    review_decide(trajectory=trajectory, decision="approved", by=lead)
    return trajectory


def test_the_tokenizer_fingerprint_names_vocabulary_and_chat_template(
    tiny_model_path, other_model_path
):
    mine, other = _tokenizer(tiny_model_path), _tokenizer(other_model_path)
    assert tokenizer_fingerprint(mine) == tokenizer_fingerprint(_tokenizer(tiny_model_path))
    assert tokenizer_fingerprint(mine) != tokenizer_fingerprint(other)  # another vocabulary
    retemplated = _tokenizer(tiny_model_path)
    retemplated.chat_template = "{{ messages[0]['content'] }}"
    assert tokenizer_fingerprint(retemplated) != tokenizer_fingerprint(mine)


def test_a_trajectory_records_its_tokenizer_endpoint_and_prompts(
    db, problem, lead, tiny_model_path
):
    trajectory = _golden_from(tiny_model_path, problem, lead, "tiny")
    assert trajectory.tokenizer_fingerprint == tokenizer_fingerprint(_tokenizer(tiny_model_path))
    prompts = trajectory.prompts
    assert prompts["system_prompt"] == engine.DEFAULT_SYSTEM_PROMPT
    assert prompts["worked_example"] == list(engine.Prompts().worked_example)
    assert prompts["think_prefix"] == "auto" and prompts["id"]


def test_freezing_a_golden_set_of_two_tokenizers_is_refused(
    db, settings, tmp_path, problem, lead, tiny_model_path, other_model_path
):
    from curation.models import DatasetVersion
    from curation.selectors.datasets import golden_trajectories
    from curation.services.datasets import DatasetError, dataset_freeze

    settings.VAR_DIR = tmp_path
    a = _golden_from(tiny_model_path, problem, lead, "tiny")
    b = _golden_from(other_model_path, problem, lead, "other")

    with pytest.raises(DatasetError) as refused:
        dataset_freeze(name="mixed", trajectories=golden_trajectories())
    message = str(refused.value)
    assert "2 tokenizers" in message
    assert a.tokenizer_fingerprint[:12] in message and b.tokenizer_fingerprint[:12] in message
    assert "tiny: 1 trajectories" in message and "other: 1 trajectories" in message
    assert not DatasetVersion.objects.exists()


def test_freezing_per_tokenizer_splits_a_mixed_golden_set(
    db, settings, tmp_path, problem, lead, tiny_model_path, other_model_path
):
    from curation.selectors.datasets import golden_trajectories
    from curation.services.datasets import dataset_freeze_per_tokenizer

    settings.VAR_DIR = tmp_path
    a = _golden_from(tiny_model_path, problem, lead, "tiny")
    b = _golden_from(other_model_path, problem, lead, "other")

    versions = dataset_freeze_per_tokenizer(name="golden", trajectories=golden_trajectories())

    assert len(versions) == 2
    by_tokenizer = {v.tokenizer_fingerprint: v for v in versions}
    assert set(by_tokenizer) == {a.tokenizer_fingerprint, b.tokenizer_fingerprint}
    for trajectory in (a, b):
        version = by_tokenizer[trajectory.tokenizer_fingerprint]
        assert version.endpoints == [trajectory.endpoint.name]
        assert version.prompts == trajectory.prompts
        assert version.name == f"golden [tokenizer {trajectory.tokenizer_fingerprint[:12]}]"
        folder = Path(version.directory)
        lines = (folder / "tokens.jsonl").read_text().splitlines()
        (record,) = [json.loads(line) for line in lines]
        assert record["tokenizer"] == trajectory.tokenizer_fingerprint
        assert record["endpoint"] == trajectory.endpoint.name
        assert record["prompts"] == trajectory.prompts
        card = (folder / "README.md").read_text()
        assert trajectory.tokenizer_fingerprint in card and trajectory.endpoint.name in card
        assert json.dumps(trajectory.prompts["system_prompt"])[1:40] in card


def test_the_freeze_form_refuses_a_mix_or_splits_it_on_the_leads_choice(
    db, settings, tmp_path, client_for, problem, lead, tiny_model_path, other_model_path
):
    from curation.models import DatasetVersion

    settings.VAR_DIR = tmp_path
    _golden_from(tiny_model_path, problem, lead, "tiny")
    _golden_from(other_model_path, problem, lead, "other")
    client = client_for(lead)

    refused = client.post("/datasets/freeze", {"name": "g"}, follow=True)
    assert "mixes 2 tokenizers" in refused.content.decode()
    assert not DatasetVersion.objects.exists()

    client.post("/datasets/freeze", {"name": "g", "per_tokenizer": "on"})
    assert DatasetVersion.objects.count() == 2


def test_a_branch_is_never_continued_with_another_tokenizer(
    db, problem, lead, tiny_model_path, other_model_path
):
    from curation.services.endpoints import rollout_config
    from curation.services.hints import branch_continue
    from curation.services.trajectories import GenerationError

    parent = _golden_from(tiny_model_path, problem, lead, "tiny")
    other = ScriptedBackend(_tokenizer(other_model_path), lambda req, text: "ok")
    with pytest.raises(GenerationError, match="made with tokenizer") as refused:
        branch_continue(parent=parent, step_index=0, char_offset=None, text="Check it.",
                        config=rollout_config(parent.endpoint), backend=other)  # fmt: skip
    assert parent.tokenizer_fingerprint[:12] in str(refused.value)
