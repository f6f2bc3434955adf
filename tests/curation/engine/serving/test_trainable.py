"""Trainable weights from a GGUF: the Hugging Face form keeps the tokenizer and chat template the
GGUF serves with (a tiny Qwen2 GGUF written in the test), is made once, and is refused with a
clear message where memory would not hold it."""

from __future__ import annotations

import json

import pytest

from curation.engine.serving import trainable
from curation.engine.serving.trainable import RECORD, TrainableError, trainable_weights
from tests.gguf_writer import write_tiny_gguf


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, tiny_model_path):
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", tiny_model_path)


def test_the_trainable_weights_keep_the_gguf_s_tokenizer_and_chat_template(
    tiny_gguf, tiny_model_path
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = trainable_weights(tiny_gguf)
    assert folder == tiny_gguf.with_name("tiny-hf")
    served = AutoTokenizer.from_pretrained(tiny_model_path)  # what the GGUF was written from
    made = AutoTokenizer.from_pretrained(folder)
    text = "Plan it.<think>\n```python\nprint(1)\n```\n</think>\\boxed{12}<|im_end|>"
    assert made(text)["input_ids"] == served(text)["input_ids"]
    assert made.eos_token == "<|im_end|>" and made.pad_token == "<|endoftext|>"
    chat = [{"role": "user", "content": "Maximize 3x."}]
    assert made.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == (
        served.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    )
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.eos_token_id == served.convert_tokens_to_ids("<|im_end|>")
    assert model(**made("x = 1", return_tensors="pt")).logits.shape[-1] == len(served)
    record = json.loads((folder / RECORD).read_text())
    assert record["gguf_sha256"] == trainable.sha256_of(tiny_gguf) and record["dtype"] == "bfloat16"


def test_a_second_call_reuses_the_folder_and_a_changed_gguf_remakes_it(tmp_path, tiny_model_path):
    gguf = write_tiny_gguf(tmp_path / "m.gguf", tiny_model_path, seed=1)
    folder = trainable_weights(gguf)
    made_at = (folder / RECORD).stat().st_mtime_ns
    assert trainable_weights(gguf) == folder
    assert (folder / RECORD).stat().st_mtime_ns == made_at
    write_tiny_gguf(gguf, tiny_model_path, seed=2)
    trainable_weights(gguf)
    assert json.loads((folder / RECORD).read_text())["gguf_sha256"] == trainable.sha256_of(gguf)


def test_too_little_memory_is_refused_before_anything_is_written(
    tmp_path, tiny_model_path, monkeypatch
):
    gguf = write_tiny_gguf(tmp_path / "m.gguf", tiny_model_path)
    monkeypatch.setattr(trainable, "memory_available_bytes", lambda: 1024)  # a simulated host
    with pytest.raises(TrainableError, match=r"needs about .* GiB of memory"):
        trainable_weights(gguf)
    assert not (tmp_path / "m-hf").exists()


def test_a_file_that_is_not_a_gguf_is_named(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(TrainableError, match="not a readable GGUF"):
        trainable_weights(bad)
