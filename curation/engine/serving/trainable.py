"""Trainable weights for a GGUF model: its Hugging Face form, made once and kept beside it.

The embedded model is served as a quantized GGUF; SFT and GRPO need Hugging Face weights.
transformers reads a GGUF and dequantizes it; this module writes the result (bf16 by default)
to ``<gguf stem>-hf/`` beside the file, with the tokenizer and chat template the GGUF serves
with, and a record (``calm_trainable.json``: the GGUF's SHA-256, dtype, parameter count, time).
A folder whose record names the same GGUF hash is reused. The folder appears whole or not at
all (written to a temporary folder, then renamed).

transformers' GGUF tokenizer for Qwen2 knows only three special tokens and takes its end token
from the wrong field, so the tokenizer is corrected from the GGUF's own metadata (every control
and user-defined token kept as an added token under its id; end, padding and start tokens as
the GGUF names them) and checked against it before anything is written.

    python -m curation.engine.serving.trainable PATH.gguf [--dtype bfloat16]

Plain Python, no Django.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .local_model import TRAINABLE_RECORD as RECORD
from .local_model import sha256_of
from .local_model import trainable_folder as default_folder

_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types
_BYTES_PER_PARAM = {"bfloat16": 2, "float16": 2, "float32": 4}


class TrainableError(RuntimeError):
    """The weights cannot be made (memory, an unreadable GGUF, a tokenizer that disagrees)."""


@dataclass
class GGUFTokenizerFacts:
    tokens: list[str]
    token_types: list[int]
    eos_id: int | None
    bos_id: int | None
    pad_id: int | None
    add_bos: bool
    chat_template: str
    parameters: int


def gguf_facts(gguf: Path) -> GGUFTokenizerFacts:
    """The tokenizer metadata and parameter count of a GGUF file (no weights are read)."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(gguf))
    except Exception as exc:
        raise TrainableError(f"{gguf} is not a readable GGUF file: {exc}") from exc

    def field(name: str):
        found = reader.fields.get(name)
        return None if found is None else found.contents()

    tokens = field("tokenizer.ggml.tokens")
    if not tokens:
        raise TrainableError(f"{gguf} has no tokenizer (tokenizer.ggml.tokens)")
    types = field("tokenizer.ggml.token_type") or [1] * len(tokens)
    add_bos = field("tokenizer.ggml.add_bos_token")
    return GGUFTokenizerFacts(
        tokens=list(tokens),
        token_types=[int(t) for t in types],
        eos_id=field("tokenizer.ggml.eos_token_id"),
        bos_id=field("tokenizer.ggml.bos_token_id"),
        pad_id=field("tokenizer.ggml.padding_token_id"),
        add_bos=bool(add_bos) if add_bos is not None else False,
        chat_template=field("tokenizer.chat_template") or "",
        parameters=sum(int(t.n_elements) for t in reader.tensors),
    )


def memory_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def memory_needed_bytes(parameters: int, dtype: str) -> int:
    """Peak while converting: the dequantized float32 tensors plus the ``dtype`` copy."""
    return parameters * (4 + _BYTES_PER_PARAM[dtype])


def corrected_tokenizer(tokenizer, facts: GGUFTokenizerFacts):
    """``tokenizer`` (transformers' reading of the GGUF) with the GGUF's added tokens, special
    tokens and chat template; raises ``TrainableError`` when an id still disagrees."""
    from tokenizers import AddedToken

    added = [
        AddedToken(text, special=kind == _CONTROL, normalized=False)
        for text, kind in zip(facts.tokens, facts.token_types, strict=False)
        if kind in (_CONTROL, _USER_DEFINED)
    ]
    if added:
        tokenizer.add_tokens(added)
    names = {"eos_token": facts.eos_id, "pad_token": facts.pad_id}
    if facts.add_bos:
        names["bos_token"] = facts.bos_id
    for name, index in names.items():
        if index is not None:
            setattr(tokenizer, name, facts.tokens[index])
    if facts.chat_template:
        tokenizer.chat_template = facts.chat_template
    wrong = [
        f"{text!r}: GGUF id {index}, tokenizer id {tokenizer.convert_tokens_to_ids(text)}"
        for index, (text, kind) in enumerate(zip(facts.tokens, facts.token_types, strict=False))
        if kind in (_CONTROL, _USER_DEFINED) and tokenizer.convert_tokens_to_ids(text) != index
    ]
    if len(tokenizer) != len(facts.tokens):
        wrong.append(f"{len(tokenizer)} tokens in the tokenizer, {len(facts.tokens)} in the GGUF")
    if wrong:
        raise TrainableError(
            "the tokenizer read from the GGUF disagrees with it: " + "; ".join(wrong[:5])
        )
    return tokenizer


def trainable_weights(
    gguf: str | Path, *, out: str | Path | None = None, dtype: str = "bfloat16"
) -> Path:
    """The Hugging Face folder of ``gguf`` (made now, or reused when its record matches)."""
    gguf = Path(gguf).resolve()
    if dtype not in _BYTES_PER_PARAM:
        raise TrainableError(f"dtype {dtype!r}: one of {', '.join(_BYTES_PER_PARAM)}")
    if not gguf.is_file():
        raise TrainableError(f"{gguf} does not exist (python manage.py prepare_model makes it)")
    out = Path(out) if out else default_folder(gguf)
    digest = sha256_of(gguf)
    record_file = out / RECORD
    if record_file.is_file():
        record = json.loads(record_file.read_text())
        if record.get("gguf_sha256") == digest and record.get("dtype") == dtype:
            return out
    facts = gguf_facts(gguf)
    needed, available = memory_needed_bytes(facts.parameters, dtype), memory_available_bytes()
    if available is not None and needed > available:
        raise TrainableError(
            f"making trainable weights of {gguf.name} ({facts.parameters / 1e9:.2f}B parameters) "
            f"needs about {needed / 2**30:.1f} GiB of memory; {available / 2**30:.1f} GiB is "
            "available"
        )

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    tokenizer = corrected_tokenizer(
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name), facts
    )
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=getattr(torch, dtype)
    )
    # The weights are dequantized in memory: saved as plain tensors, not as a GGUF model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if model.get_input_embeddings().weight.shape[0] != len(facts.tokens):
        raise TrainableError("the model's embedding rows differ from the GGUF's vocabulary")
    if tokenizer.eos_token_id is not None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.config.eos_token_id = tokenizer.eos_token_id
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        record = {
            "gguf": str(gguf),
            "gguf_sha256": digest,
            "dtype": dtype,
            "parameters": facts.parameters,
            "made_s": round(time.monotonic() - started, 1),
            "tokenizer": asdict(facts) | {"tokens": len(facts.tokens), "token_types": None},
        }
        (work / RECORD).write_text(json.dumps(record, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gguf")
    parser.add_argument("--dtype", default="bfloat16", choices=sorted(_BYTES_PER_PARAM))
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    try:
        folder = trainable_weights(args.gguf, out=args.out, dtype=args.dtype)
    except TrainableError as exc:
        raise SystemExit(f"error: {exc}") from exc
    record = json.loads((folder / RECORD).read_text())
    print(f"{folder} ({record['parameters'] / 1e9:.2f}B parameters, {record['dtype']}, "
          f"made in {record['made_s']} s)")  # fmt: skip


if __name__ == "__main__":
    main()
