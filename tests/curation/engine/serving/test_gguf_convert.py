"""A trained checkpoint as a GGUF served by llama.cpp's own server: the conversion with the
pinned source's converter and quantizer (a LoRA adapter merged first), the tokenizer and chat
template kept, and the real server generating from it with token ids in and out.

The conversion and the server need the llama.cpp build (``prepare_model`` makes it): those
tests skip with the reason where it is not built; what needs no build runs everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.engine.serving import gguf_convert, gguf_serve, llama_server, local_model

BUILT = llama_server.installed()
NOT_BUILT = "llama.cpp is not built here (python manage.py prepare_model builds it)"


def _lora_adapter(base: Path, out: Path) -> Path:
    """A LoRA adapter on the tiny model whose weights change its output (B is not zero)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                        init_lora_weights=False)  # fmt: skip
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


# --- without the build ----------------------------------------------------------------------------


def test_without_the_build_the_conversion_says_how_to_make_it(
    tmp_path, tiny_model_path, monkeypatch
):
    monkeypatch.setattr(llama_server, "installed", lambda root=None: None)
    with pytest.raises(gguf_convert.ConvertError, match="prepare_model"):
        gguf_convert.convert_checkpoint(tiny_model_path, tmp_path / "gguf")
    assert not (tmp_path / "gguf").exists()


def test_a_build_whose_source_is_gone_is_refused_with_the_reason(tmp_path):
    serve = tmp_path / "0.3.36-x" / "serve-1"
    serve.mkdir(parents=True)
    (serve / "llama-quantize").write_text("")
    build = llama_server.ServerBuild(
        directory=str(serve), source="0.3.36-x", cmake_args=[], baseline="x64", variants=["x64"],
        in_use="x64", instruction_sets="",
    )  # fmt: skip
    with pytest.raises(gguf_convert.ConvertError, match="source of the build is missing"):
        gguf_convert.require_build(build)


def test_the_tiny_tokenizer_declares_gpt2s_pre_tokenizer_and_qwens_declares_none(
    tmp_path, tiny_model_path
):
    assert gguf_convert.pre_tokenizer_fallback(tiny_model_path) == "gpt-2"
    qwen = {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t)"}, "behavior": "Isolated"},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False},
    ]}}  # fmt: skip
    (tmp_path / "tokenizer.json").write_text(json.dumps(qwen))
    assert gguf_convert.pre_tokenizer_fallback(tmp_path) == ""
    assert gguf_convert.pre_tokenizer_fallback(tmp_path / "nothing") == ""


def test_a_folder_without_weights_is_not_a_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(gguf_convert.ConvertError, match="no weights"):
        gguf_convert.checkpoint_digest(tmp_path)


@pytest.mark.timeout(300)
def test_a_lora_adapter_is_merged_into_its_base_with_the_tokenizer(tmp_path, tiny_model_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = _lora_adapter(tiny_model_path, tmp_path / "adapter")
    assert gguf_convert.is_adapter(adapter) and not gguf_convert.is_adapter(tiny_model_path)
    assert gguf_convert.adapter_base(adapter) == str(tiny_model_path)
    merged = gguf_convert.merge_adapter(adapter, tmp_path / "merged")
    assert not gguf_convert.is_adapter(merged)
    assert gguf_convert.chat_template_of(merged) == gguf_convert.chat_template_of(tiny_model_path)
    ids = torch.tensor([AutoTokenizer.from_pretrained(merged).encode("m.x = pyo.Var()")])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_path, dtype=torch.float32)
    with torch.no_grad():
        plain = base(ids).logits
        adapted = PeftModel.from_pretrained(base, str(adapter))(ids).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(merged)(ids).logits
    assert not torch.allclose(plain, adapted, atol=1e-4)  # the adapter does something
    assert torch.allclose(adapted, merged_logits, atol=1e-4)  # and the merge keeps it


def test_an_adapter_whose_base_is_not_here_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": "Qwen/Qwen2.5-Coder-1.5B-Instruct"}
    ))  # fmt: skip
    with pytest.raises(gguf_convert.ConvertError, match="not a local folder"):
        gguf_convert.merge_adapter(tmp_path, tmp_path / "merged")


def test_the_checkpoint_server_gets_the_embedded_models_command_line(tmp_path):
    build = llama_server.ServerBuild(
        directory=str(tmp_path), source="s", cmake_args=[], baseline="x64", variants=["x64"],
        in_use="x64", instruction_sets="",
    )  # fmt: skip
    argv = gguf_serve.command(build, tmp_path / "m.gguf", port=9, alias="run-3", n_ctx=1024,
                              slots=2)  # fmt: skip
    assert argv == local_model.server_command(
        tmp_path / "llama-server", tmp_path / "m.gguf", port=9,
        n_threads=local_model.n_threads(), n_ctx=1024, slots=2, alias="run-3",
    )  # fmt: skip
    assert "--parallel" in argv and "--cache-prompt" in argv


# --- with the real build --------------------------------------------------------------------------


@pytest.mark.skipif(BUILT is None, reason=NOT_BUILT)
@pytest.mark.timeout(600)
def test_a_tiny_qwen_checkpoint_converts_quantizes_and_serves_token_ids(tmp_path, tiny_model_path):
    from transformers import AutoTokenizer

    from curation.engine import GenerationRequest, load_backend

    conversion = gguf_convert.convert_checkpoint(tiny_model_path, tmp_path / "gguf")
    served_file = Path(conversion.gguf)
    assert served_file.name == "model-Q4_K_M.gguf" and Path(conversion.unquantized).is_file()
    assert conversion.source == BUILT.source and conversion.merged is None
    assert set(conversion.sha256) == {"model-f16.gguf", "model-Q4_K_M.gguf"}
    assert conversion.sha256["model-Q4_K_M.gguf"] == gguf_convert.sha256_of(served_file)
    assert {"convert", "quantize", "total"} <= set(conversion.seconds)
    meta = gguf_convert.gguf_metadata(served_file)
    assert meta["architecture"] == "qwen3" and meta["pre_tokenizer"] == "gpt-2"
    assert meta["chat_template"] == gguf_convert.chat_template_of(tiny_model_path)
    assert meta["file_type"] == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    record = json.loads((tmp_path / "gguf" / gguf_convert.RECORD).read_text())
    assert record["checkpoint_sha256"] == conversion.checkpoint_sha256
    again = gguf_convert.convert_checkpoint(tiny_model_path, tmp_path / "gguf")
    assert again.reused and again.gguf == conversion.gguf

    served = gguf_serve.start(
        served_file, alias="tiny-run", status_file=tmp_path / "status.json",
        log_file=tmp_path / "server.log", n_ctx=1024, slots=2,
    )  # fmt: skip
    try:
        status = gguf_serve.wait_served(served, timeout=240)
        assert status["smoke"]["ok"], status
        tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
        backend = load_backend({
            "backend": "openai", "model": "tiny-run", "base_url": served.base_url,
            "completion_api": "llama.cpp", "tokenizer": str(tiny_model_path),
        })  # fmt: skip
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Maximize 3x with x <= 4."}], tokenize=False,
            add_generation_prompt=True,
        )  # fmt: skip
        prompt = tokenizer.encode(text)
        # The server reads the text into the same ids as the checkpoint's tokenizer.
        import urllib.request

        request = urllib.request.Request(  # noqa: S310
            served.base_url[: -len("/v1")] + "/tokenize",
            json.dumps({"content": text, "parse_special": True}).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            assert json.loads(response.read())["tokens"] == prompt
        [result] = backend.generate([GenerationRequest(prompt, 6, temperature=0.0)])
        assert result.error is None and 1 <= len(result.token_ids) <= 6, result
        assert all(0 <= i < len(tokenizer) for i in result.token_ids)
        assert result.text == tokenizer.decode(result.token_ids, skip_special_tokens=False)
    finally:
        assert gguf_serve.stop(served.pid)
    assert not gguf_serve._alive(served.pid)


@pytest.mark.skipif(BUILT is None, reason=NOT_BUILT)
@pytest.mark.timeout(600)
def test_a_lora_checkpoint_is_merged_then_converted(tmp_path, tiny_model_path):
    adapter = _lora_adapter(tiny_model_path, tmp_path / "adapter")
    conversion = gguf_convert.convert_checkpoint(adapter, tmp_path / "gguf", quant=None)
    assert conversion.merged == {"adapter": str(adapter), "base": str(tiny_model_path)}
    assert conversion.hf_dir == str(tmp_path / "gguf" / "merged")
    assert conversion.gguf == conversion.unquantized and "merge" in conversion.seconds
    base = gguf_convert.convert_checkpoint(tiny_model_path, tmp_path / "base", quant=None)
    assert conversion.sha256["model-f16.gguf"] != base.sha256["model-f16.gguf"]
    assert gguf_convert.gguf_metadata(Path(conversion.gguf))["chat_template"]


def test_a_live_pid_that_is_not_a_checkpoint_supervisor_does_not_count_as_serving():
    """After a restart the recorded pid may belong to another process: not a running server."""
    import subprocess
    import sys

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert gguf_serve._alive(other.pid) and not gguf_serve.running(other.pid)
    finally:
        other.kill()
        other.wait()
    assert not gguf_serve.running(other.pid)
