"""A tiny Qwen2 GGUF written offline for tests: the tiny model's byte-level BPE tokenizer and
chat template in the GGUF's own metadata (as llama.cpp's converter writes them), random F32
weights under llama.cpp's tensor names."""

from __future__ import annotations

import json
from pathlib import Path

HIDDEN, FFN, LAYERS, HEADS, KV_HEADS = 64, 128, 2, 4, 2


def write_tiny_gguf(path: Path, tokenizer_dir: Path, *, seed: int = 0) -> Path:
    import numpy as np
    from gguf import GGUFWriter, TokenType

    tok = json.loads((Path(tokenizer_dir) / "tokenizer.json").read_text())
    config = json.loads((Path(tokenizer_dir) / "tokenizer_config.json").read_text())
    template_file = Path(tokenizer_dir) / "chat_template.jinja"
    template = template_file.read_text() if template_file.exists() else config["chat_template"]
    vocab = dict(tok["model"]["vocab"])
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    tokens = [""] * (max(vocab.values()) + 1)
    for text, index in vocab.items():
        tokens[index] = text
    added = {a["id"]: a.get("special", False) for a in tok.get("added_tokens", [])}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]

    writer = GGUFWriter(str(path), "qwen2")
    writer.add_name("tiny-qwen2")
    writer.add_context_length(4096)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(0)  # all F32
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [
            TokenType.NORMAL
            if i not in added
            else (TokenType.CONTROL if added[i] else TokenType.USER_DEFINED)
            for i in range(len(tokens))
        ]
    )
    writer.add_token_merges(merges)
    writer.add_eos_token_id(vocab["<|im_end|>"])
    writer.add_pad_token_id(vocab["<|endoftext|>"])
    writer.add_bos_token_id(vocab["<|endoftext|>"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(template)

    rng = np.random.default_rng(seed)
    head_dim = HIDDEN // HEADS

    def weight(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer.add_tensor("token_embd.weight", weight(len(tokens), HIDDEN))
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    for n in range(LAYERS):
        block = f"blk.{n}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        writer.add_tensor(f"{block}.attn_q.weight", weight(HEADS * head_dim, HIDDEN))
        writer.add_tensor(f"{block}.attn_q.bias", weight(HEADS * head_dim))
        writer.add_tensor(f"{block}.attn_k.weight", weight(KV_HEADS * head_dim, HIDDEN))
        writer.add_tensor(f"{block}.attn_k.bias", weight(KV_HEADS * head_dim))
        writer.add_tensor(f"{block}.attn_v.weight", weight(KV_HEADS * head_dim, HIDDEN))
        writer.add_tensor(f"{block}.attn_v.bias", weight(KV_HEADS * head_dim))
        writer.add_tensor(f"{block}.attn_output.weight", weight(HIDDEN, HEADS * head_dim))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        writer.add_tensor(f"{block}.ffn_gate.weight", weight(FFN, HIDDEN))
        writer.add_tensor(f"{block}.ffn_up.weight", weight(FFN, HIDDEN))
        writer.add_tensor(f"{block}.ffn_down.weight", weight(HIDDEN, FFN))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
