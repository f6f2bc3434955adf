"""SFT with TRL on the tiny model: the labels the trainer trains on, events, checkpoints,
iw-SFT and LoRA. Real TRL steps on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.training.scripts.conftest import tagged_record
from training.scripts import sft
from training.scripts.runtime import CONFIG_NAME, read_events, run_training

CONFIG = Path(__file__).resolve().parents[3] / "training" / "scripts" / "configs" / "sft_tiny.yaml"


def _args(tiny_model_path, sft_file, out: Path, *extra: str):
    return sft.parse_args([
        "--config", str(CONFIG), "--model_name_or_path", str(tiny_model_path),
        "--train_file", str(sft_file), "--output_dir", str(out / "run"),
        "--metrics_file", str(out / "metrics.jsonl"), *extra,
    ])  # fmt: skip


def _recording_builder(batches: list):
    """build_trainer, with the trainer's compute_loss recording each batch it is given."""

    def build(*args, **kwargs):
        trainer = sft.build_trainer(*args, **kwargs)
        inner = trainer.compute_loss

        def compute_loss(model, inputs, *a, **kw):
            batches.append({k: v.clone() for k, v in inputs.items() if hasattr(v, "clone")})
            return inner(model, inputs, *a, **kw)

        trainer.compute_loss = compute_loss
        return trainer

    return build


def _expected_labels(tokenizer, train_on_hints: bool) -> dict[tuple, list[int]]:
    """input_ids → labels: the model's tokens (and hints when trained) keep their id."""
    out = {}
    for i in range(6):
        ids, tags = tagged_record(tokenizer, i)
        # The two `labels` records were exported without hint training, whatever the flag.
        hints = train_on_hints and i < 4
        trained = {1, 3} if hints else {1}
        out[tuple(ids)] = [t if tag in trained else -100 for t, tag in zip(ids, tags, strict=True)]
    return out


@pytest.mark.parametrize("train_on_hints", [False, True])
def test_it_trains_exactly_the_reasoners_tokens(
    tmp_path, tiny_model_path, tiny_tokenizer, sft_file, train_on_hints
):
    args = _args(tiny_model_path, sft_file, tmp_path, "--train_on_hints", str(train_on_hints),
                 "--save_strategy", "steps", "--save_steps", "2")  # fmt: skip
    batches: list = []
    assert run_training("sft", _recording_builder(batches), args,
                        metrics_file=args[0].metrics_file) == 0  # fmt: skip

    expected = _expected_labels(tiny_tokenizer, train_on_hints)
    assert len(batches) == 2
    seen = 0
    for batch in batches:
        assert "weight" in batch
        for row_ids, row_labels, row_mask in zip(
            batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True
        ):
            n = int(row_mask.sum())
            ids = tuple(row_ids[:n].tolist())
            assert row_labels[:n].tolist() == expected[ids]  # prompt/interpreter(/hint) = -100
            assert set(row_labels[n:].tolist()) <= {-100}  # padding
            seen += 1
    assert seen == 4

    events = read_events(tmp_path / "metrics.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases == ["loading", "training"] and kinds.index("phase") < kinds.index("step")
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == [1, 2]
    assert all(e["max_steps"] == 2 and e["loss"] > 0 and "learning_rate" in e for e in steps)
    assert events[-1]["status"] == "completed" and events[-1]["cancelled"] is False
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert [e["path"] for e in events if e["event"] == "checkpoint"] == [str(checkpoint)]
    assert (checkpoint / "model.safetensors").exists()
    saved = yaml.safe_load((checkpoint / CONFIG_NAME).read_text())
    assert saved["train_on_hints"] is train_on_hints and saved["max_steps"] == 2
    assert saved["model_name_or_path"] == str(tiny_model_path)
    assert (tmp_path / "run" / CONFIG_NAME).exists() and (tmp_path / "run" / "config.json").exists()


def test_the_resolved_config_reads_back_with_overrides(tmp_path, tiny_model_path, sft_file):
    first = _args(tiny_model_path, sft_file, tmp_path, "--max_steps", "1")
    assert run_training("sft", sft.build_trainer, first, metrics_file=None) == 0
    saved = tmp_path / "run" / CONFIG_NAME
    script, training, model = sft.parse_args(["--config", str(saved), "--learning_rate", "0.5"])
    assert training.learning_rate == 0.5 and training.max_steps == 1
    assert script.train_file == str(sft_file) and model.model_name_or_path == str(tiny_model_path)


def test_it_runs_a_real_iw_sft_step_against_a_frozen_reference(tmp_path, tiny_model_path, sft_file):
    args = _args(tiny_model_path, sft_file, tmp_path, "--iw_sft", "true", "--max_steps", "1",
                 "--per_device_train_batch_size", "3")  # fmt: skip
    assert run_training("sft", sft.build_trainer, args, metrics_file=args[0].metrics_file) == 0
    log = next(e["logs"] for e in read_events(tmp_path / "metrics.jsonl") if e["event"] == "log")
    # Step one: current == reference, so every ratio is 1 and the batch mean is 1.
    assert log["iw/weight_mean"] == pytest.approx(1.0)
    assert log["iw/weight_max"] == pytest.approx(1.0) and log["loss"] > 0


def test_it_trains_a_lora_adapter_with_iw_sft(tmp_path, tiny_model_path, sft_file):
    args = _args(tiny_model_path, sft_file, tmp_path, "--use_peft", "--lora_r", "4",
                 "--lora_alpha", "8", "--iw_sft", "true", "--max_steps", "1")  # fmt: skip
    assert run_training("sft", sft.build_trainer, args, metrics_file=args[0].metrics_file) == 0
    out = tmp_path / "run"
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    assert (out / "adapter_model.safetensors").exists()
    events = read_events(tmp_path / "metrics.jsonl")
    assert events[-1]["status"] == "completed"
    assert any(e["event"] == "step" and e["step"] == 1 for e in events)


# --- a dataset is one model's data ------------------------------------------------------------


def _records_made_by(tokenizer, fingerprint: str, path: Path) -> Path:
    lines = []
    for i in range(2):
        ids, tags = tagged_record(tokenizer, i)
        lines.append({"id": f"t-{i}", "input_ids": ids, "token_tags": tags,
                      "tokenizer": fingerprint, "endpoint": "other-reasoner"})  # fmt: skip
    path.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    return path


def test_sft_refuses_a_dataset_made_with_another_tokenizer(tmp_path, tiny_model_path):
    from transformers import AutoTokenizer

    from curation.engine.fingerprint import tokenizer_fingerprint
    from tests.tiny_model import build_tiny_model
    from training.scripts.data import ForeignTokenizerError

    other = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "other", vocab_size=520))
    theirs = tokenizer_fingerprint(other)
    mine = tokenizer_fingerprint(AutoTokenizer.from_pretrained(tiny_model_path))
    assert theirs != mine
    # Ids of the other vocabulary, all of them inside this model's vocabulary too: only the
    # fingerprint can tell that they mean other tokens.
    data = _records_made_by(other, theirs, tmp_path / "foreign.jsonl")
    args = _args(tiny_model_path, data, tmp_path)

    with pytest.raises(ForeignTokenizerError) as refused:
        sft.build_trainer(*args)
    message = str(refused.value)
    assert theirs[:12] in message and mine[:12] in message
    assert "other-reasoner" in message and str(tiny_model_path) in message


def test_sft_takes_a_dataset_made_with_its_own_tokenizer(tmp_path, tiny_model_path, tiny_tokenizer):
    from curation.engine.fingerprint import tokenizer_fingerprint
    from training.scripts.data import tokenizer_check

    mine = tokenizer_fingerprint(tiny_tokenizer)
    data = _records_made_by(tiny_tokenizer, mine, tmp_path / "own.jsonl")
    assert tokenizer_check(data, tiny_tokenizer, str(tiny_model_path)) == mine


def test_iw_sft_weights_move_off_1_once_the_model_differs_from_its_reference(
    tmp_path, tiny_model_path, sft_file
):
    """Step 1: the model is its reference, every weight is 1. After a few large steps on the
    same records the model assigns them a higher likelihood than the frozen reference did, so
    the unnormalised weights exp(mean log-ratio) rise above 1 (a reference that followed the
    model, or no reference at all, would keep them at 1)."""
    args = _args(tiny_model_path, sft_file, tmp_path, "--iw_sft", "true", "--max_steps", "4",
                 "--per_device_train_batch_size", "3", "--iw_normalize", "none",
                 "--learning_rate", "0.01", "--num_train_epochs", "10")  # fmt: skip
    assert run_training("sft", sft.build_trainer, args, metrics_file=args[0].metrics_file) == 0
    logs = [e["logs"] for e in read_events(tmp_path / "metrics.jsonl")
            if e["event"] == "log" and "iw/weight_mean" in e["logs"]]  # fmt: skip
    assert len(logs) >= 3
    assert logs[0]["iw/weight_mean"] == pytest.approx(1.0)
    assert logs[-1]["iw/weight_mean"] > 1.01 and logs[-1]["iw/weight_max"] > 1.01
