"""A trained Hugging Face checkpoint as a GGUF that llama.cpp's own server serves.

The converter (``convert_hf_to_gguf.py``) and the quantizer (``llama-quantize``) come from the
same pinned llama.cpp source the server is built from (``llama_server``: the source of the
``llama-cpp-python`` sdist, extracted beside the build): the converter runs with that source's
own ``gguf-py`` first on the path, so the file format the converter writes is the one that
server reads (the venv's ``gguf`` is pinned to the same version, 0.19.0, for reading metadata).

A LoRA adapter (a PEFT folder: ``adapter_config.json``) is merged into its base first (the base
named in the adapter, or one given); the merged weights are written next to the GGUF. The
converter writes f16 (or bf16 / f32 / q8_0), then ``llama-quantize`` makes the served file
(Q4_K_M by default; tensors whose rows do not fit a k-quant get llama.cpp's own fallback type).
The tokenizer and its chat template travel in the GGUF metadata; the conversion checks that
``tokenizer.chat_template`` is there and equals the checkpoint's.

A tokenizer the converter does not recognise (it identifies BPE pre-tokenizers by hashing the
tokens of a fixed text, so a tokenizer trained from scratch, like the test models', is never in
its list) is converted with the pre-tokenizer its ``tokenizer.json`` declares when that is one
llama.cpp implements exactly (plain byte-level with GPT-2's split: ``gpt-2``); otherwise the
conversion fails and says so.

Everything lands in ``out_dir`` with a record (``calm_gguf.json``: hashes, sizes, seconds per
step, the llama.cpp source); a folder whose record names the same checkpoint hash and options is
reused. Plain Python, no Django.

    python -m curation.engine.serving.gguf_convert CHECKPOINT OUT_DIR [--quant Q4_K_M|none]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import llama_server
from .local_model import sha256_of

RECORD = "calm_gguf.json"
DEFAULT_QUANT = "Q4_K_M"
OUTTYPES = ("f16", "bf16", "f32", "q8_0")
ADAPTER_CONFIG = "adapter_config.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_CONVERT_TIMEOUT_S = 3600
_NO_BUILD = (
    "llama.cpp is not built here, and its converter and quantizer come with the build: run "
    "`python manage.py prepare_model` (it builds llama-server and llama-quantize from the "
    "pinned source, minutes on 2 cores)"
)

# Runs the pinned source's converter in a child process: that source's gguf-py and conversion
# package first on the path; an unrecognised BPE pre-tokenizer falls back to the one given.
_RUNNER = r"""
import sys
src, fallback = sys.argv[1], sys.argv[2]
sys.path[:0] = [src + "/gguf-py", src]
import convert_hf_to_gguf
from conversion.base import TextModel
if fallback:
    recognised = TextModel.get_vocab_base_pre
    def get_vocab_base_pre(self, tokenizer):
        try:
            return recognised(self, tokenizer)
        except NotImplementedError:
            print("calm: the BPE pre-tokenizer is not in llama.cpp's list; tokenizer.json "
                  f"declares the {fallback!r} one, used", file=sys.stderr, flush=True)
            return fallback
    TextModel.get_vocab_base_pre = get_vocab_base_pre
sys.argv = ["convert_hf_to_gguf.py", *sys.argv[3:]]
convert_hf_to_gguf.main()
"""


class ConvertError(RuntimeError):
    """The checkpoint cannot be converted; the message says why and what to do."""


@dataclass
class Conversion:
    """What was made from a checkpoint, and how long each step took."""

    checkpoint: str  # the folder given (full weights, or a LoRA adapter)
    checkpoint_sha256: str  # of its config and weight files (see ``checkpoint_digest``)
    hf_dir: str  # the full weights converted: the checkpoint, or the merged folder
    merged: dict | None  # {"adapter", "base"} when a LoRA adapter was merged
    source: str  # the llama.cpp source id, "<version>-<sdist sha256, 12>"
    outtype: str
    quant: str | None  # None: the unquantized file is served
    gguf: str  # the file to serve
    unquantized: str
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    sizes: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # merge, convert, quantize, total
    architecture: str = ""
    pre_tokenizer: str = ""  # tokenizer.ggml.pre
    chat_template: bool = False  # the GGUF carries the checkpoint's chat template
    reused: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


# --- the build and its source ---------------------------------------------------------------------


def require_build(build: llama_server.ServerBuild | None = None) -> llama_server.ServerBuild:
    """The llama.cpp build with its source beside it, or ConvertError saying how to make it."""
    build = build or llama_server.installed()
    if build is None or not build.quantize.is_file():
        raise ConvertError(_NO_BUILD)
    if not (source_dir(build) / "convert_hf_to_gguf.py").is_file():
        raise ConvertError(f"the llama.cpp source of the build is missing ({source_dir(build)}): "
                           + _NO_BUILD)  # fmt: skip
    return build


def source_dir(build: llama_server.ServerBuild) -> Path:
    """``<cache>/<source id>/src``: the served directory's sibling (``llama_server`` layout)."""
    return Path(build.directory).parent / "src"


# --- the checkpoint -------------------------------------------------------------------------------


def is_adapter(folder: Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def checkpoint_digest(folder: Path) -> str:
    """SHA-256 over the names and bytes of a checkpoint's JSON files and weights (sorted)."""
    digest = hashlib.sha256()
    files = sorted(
        p for p in Path(folder).iterdir()
        if p.is_file() and (p.suffix == ".json" or p.suffix in _WEIGHT_SUFFIXES)
    )  # fmt: skip
    if not any(p.suffix in _WEIGHT_SUFFIXES for p in files):
        raise ConvertError(f"{folder} holds no weights (*.safetensors or *.bin)")
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(sha256_of(path).encode())
    return digest.hexdigest()


def adapter_base(adapter: Path) -> str:
    config = json.loads((Path(adapter) / ADAPTER_CONFIG).read_text())
    return str(config.get("base_model_name_or_path") or "")


def merge_adapter(adapter: Path, out: Path, *, base: str | Path | None = None) -> Path:
    """The LoRA adapter merged into its base (``merge_and_unload``), written with the tokenizer
    to ``out`` (the adapter's own tokenizer when it has one: it is what training saw)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = str(base or adapter_base(adapter))
    if not base:
        raise ConvertError(f"{adapter} is a LoRA adapter without a base model: name the base")
    if not Path(base).is_dir():
        raise ConvertError(
            f"the base model of the adapter {adapter}, {base!r}, is not a local folder: the "
            "merge needs its weights here"
        )
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    names = ("tokenizer.json", "tokenizer_config.json")
    has_tokenizer = any((Path(adapter) / name).is_file() for name in names)
    AutoTokenizer.from_pretrained(str(adapter) if has_tokenizer else base).save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def chat_template_of(folder: Path) -> str | None:
    """The checkpoint's chat template: ``chat_template.jinja`` or tokenizer_config's."""
    jinja = Path(folder) / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        config = json.loads((Path(folder) / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return None
    template = config.get("chat_template")
    return template if isinstance(template, str) else None


def pre_tokenizer_fallback(folder: Path) -> str:
    """The llama.cpp pre-tokenizer that ``tokenizer.json`` declares exactly, or "" (none
    known). Only plain byte-level with GPT-2's split qualifies (``gpt-2``)."""
    try:
        pre = json.loads((Path(folder) / "tokenizer.json").read_text()).get("pre_tokenizer")
    except (OSError, ValueError, AttributeError):
        return ""
    if isinstance(pre, dict) and pre.get("type") == "Sequence" and len(pre["pretokenizers"]) == 1:
        pre = pre["pretokenizers"][0]
    if isinstance(pre, dict) and pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    return ""


# --- the GGUF -------------------------------------------------------------------------------------


def gguf_metadata(path: Path) -> dict:
    """The metadata that says what a GGUF serves: architecture, pre-tokenizer, chat template,
    file type and token count (no weights are read)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def value(name: str):
        found = reader.fields.get(name)
        return None if found is None else found.contents()

    tokens = value("tokenizer.ggml.tokens")
    return {
        "architecture": value("general.architecture") or "",
        "pre_tokenizer": value("tokenizer.ggml.pre") or "",
        "chat_template": value("tokenizer.chat_template"),
        "file_type": value("general.file_type"),
        "tokens": len(tokens) if tokens else 0,
    }


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_converter(
    build: llama_server.ServerBuild,
    hf_dir: Path,
    out: Path,
    *,
    outtype: str = "f16",
    python: str = sys.executable,
    run: Callable = subprocess.run,
) -> None:
    """``convert_hf_to_gguf.py`` of the build's source on ``hf_dir``, writing ``out``."""
    src = source_dir(build)
    argv = [python, "-c", _RUNNER, str(src), pre_tokenizer_fallback(hf_dir), str(hf_dir),
            "--outfile", str(out), "--outtype", outtype]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = run(argv, capture_output=True, text=True, check=False, env=env,
                 timeout=_CONVERT_TIMEOUT_S)  # fmt: skip
    if result.returncode != 0 or not out.is_file():
        output = result.stdout + result.stderr
        why = ""
        if "pre-tokenizer was not recognized" in output:
            why = (" (its BPE pre-tokenizer is not one llama.cpp knows, and its tokenizer.json "
                   "declares none that llama.cpp implements exactly)")  # fmt: skip
        elif "is not supported" in output:
            why = " (llama.cpp cannot convert this architecture)"
        raise ConvertError(
            f"converting {hf_dir} to GGUF failed (exit {result.returncode}){why}:\n{_tail(output)}"
        )


def run_quantize(
    build: llama_server.ServerBuild,
    source: Path,
    out: Path,
    quant: str,
    *,
    threads: int | None = None,
    run: Callable = subprocess.run,
) -> None:
    """``llama-quantize SOURCE OUT QUANT [threads]`` with the build's binary."""
    threads = threads or max(1, len(os.sched_getaffinity(0)))
    argv = [str(build.quantize), str(source), str(out), quant, str(threads)]
    result = run(argv, capture_output=True, text=True, check=False, cwd=build.directory,
                 timeout=_CONVERT_TIMEOUT_S)  # fmt: skip
    if result.returncode != 0 or not out.is_file():
        raise ConvertError(
            f"llama-quantize to {quant} failed (exit {result.returncode}):\n"
            f"{_tail(result.stdout + result.stderr)}"
        )


def _reusable(out_dir: Path, key: dict) -> Conversion | None:
    try:
        record = json.loads((out_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    if any(record.get(k) != v for k, v in key.items()) or not Path(record["gguf"]).is_file():
        return None
    return Conversion(**{**record, "reused": True})


def convert_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    quant: str | None = DEFAULT_QUANT,
    outtype: str = "f16",
    base: str | Path | None = None,
    build: llama_server.ServerBuild | None = None,
    echo: Callable[[str], None] = print,
) -> Conversion:
    """Merge (a LoRA adapter), convert, quantize: the GGUF to serve, recorded in ``out_dir``.

    ``quant`` None serves the unquantized file. ``base`` names an adapter's base model when
    the adapter's own record does not (or names one that is not here)."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if outtype not in OUTTYPES:
        raise ConvertError(f"outtype {outtype!r}: use one of {', '.join(OUTTYPES)}")
    if not checkpoint.is_dir():
        raise ConvertError(f"{checkpoint} is not a checkpoint folder")
    build = require_build(build)
    started = time.monotonic()
    digest = checkpoint_digest(checkpoint)
    key = {"checkpoint_sha256": digest, "source": build.source, "outtype": outtype,
           "quant": quant}  # fmt: skip
    found = _reusable(out_dir, key)
    if found is not None:
        echo(f"gguf: reusing {found.gguf} (same checkpoint and options)")
        return found
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    hf_dir, merged = checkpoint, None
    if is_adapter(checkpoint):
        echo(f"gguf: merging the LoRA adapter {checkpoint} into {base or adapter_base(checkpoint)}")
        t = time.monotonic()
        hf_dir = merge_adapter(checkpoint, out_dir / "merged", base=base)
        seconds["merge"] = round(time.monotonic() - t, 2)
        merged = {"adapter": str(checkpoint), "base": str(base or adapter_base(checkpoint))}

    unquantized = out_dir / f"model-{outtype}.gguf"
    echo(f"gguf: converting {hf_dir} to {outtype} with llama.cpp {build.source}")
    t = time.monotonic()
    run_converter(build, hf_dir, unquantized, outtype=outtype)
    seconds["convert"] = round(time.monotonic() - t, 2)
    served = unquantized
    if quant:
        served = out_dir / f"model-{quant}.gguf"
        echo(f"gguf: quantizing to {quant}")
        t = time.monotonic()
        run_quantize(build, unquantized, served, quant)
        seconds["quantize"] = round(time.monotonic() - t, 2)

    meta = gguf_metadata(served)
    expected = chat_template_of(hf_dir)
    if expected is not None and meta["chat_template"] != expected:
        raise ConvertError(
            f"{served.name} does not carry the checkpoint's chat template "
            f"(tokenizer.chat_template is {'different' if meta['chat_template'] else 'missing'})"
        )
    files = [unquantized] + ([served] if served != unquantized else [])
    seconds["total"] = round(time.monotonic() - started, 2)
    conversion = Conversion(
        checkpoint=str(checkpoint), checkpoint_sha256=digest, hf_dir=str(hf_dir), merged=merged,
        source=build.source, outtype=outtype, quant=quant, gguf=str(served),
        unquantized=str(unquantized), sha256={p.name: sha256_of(p) for p in files},
        sizes={p.name: p.stat().st_size for p in files}, seconds=seconds,
        architecture=meta["architecture"], pre_tokenizer=meta["pre_tokenizer"],
        chat_template=expected is not None,
    )  # fmt: skip
    tmp = out_dir / f".{RECORD}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(conversion.to_dict(), indent=2))
    os.replace(tmp, out_dir / RECORD)
    echo(f"gguf: {served} ready in {seconds['total']:.1f} s")
    return conversion


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--quant", default=DEFAULT_QUANT, help="llama-quantize type, or none")
    parser.add_argument("--outtype", default="f16", choices=OUTTYPES)
    parser.add_argument("--base", default=None, help="a LoRA adapter's base model folder")
    args = parser.parse_args(argv)
    quant = None if args.quant.lower() == "none" else args.quant
    try:
        conversion = convert_checkpoint(
            args.checkpoint, args.out_dir, quant=quant, outtype=args.outtype, base=args.base,
            echo=lambda line: print(line, file=sys.stderr),
        )  # fmt: skip
    except ConvertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(conversion.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
