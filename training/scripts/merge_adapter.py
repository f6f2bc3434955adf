"""A LoRA run's folder made whole: the adapter merged into its base model's weights and saved
with the tokenizer, so that the checkpoint serves, evaluates and starts the next run (GRPO from
an SFT adapter) like full weights. TRL's trainers read a folder's ``config.json``; an adapter
folder has none, and its ``base_model_name_or_path`` would be the wrong KL reference.

    python -m training.scripts.merge_adapter RUN_FOLDER [--out RUN_FOLDER/merged]

Prints the merged folder. A folder without ``adapter_config.json`` is refused (it is whole).
Plain Python, no Django.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter(folder: str | os.PathLike) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def merge_adapter(folder: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Merge ``folder``'s adapter into its base; the result appears whole or not at all."""
    folder = Path(folder)
    if not is_adapter(folder):
        raise ValueError(f"{folder} holds no {ADAPTER_CONFIG}: it is not a LoRA adapter")
    out = Path(out) if out else folder / "merged"
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    base = json.loads((folder / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    model = AutoPeftModelForCausalLM.from_pretrained(str(folder), dtype="auto")
    merged = model.merge_and_unload()
    # The tokenizer the run trained with (the trainer saves it beside the adapter).
    tokenizer = AutoTokenizer.from_pretrained(str(folder) if _has_tokenizer(folder) else base)
    work = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        merged.save_pretrained(work)
        tokenizer.save_pretrained(work)
        (work / "calm_merged.json").write_text(
            json.dumps({"adapter": str(folder), "base": base}, indent=2)
        )
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return out


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    try:
        print(merge_adapter(args.folder, args.out))
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from exc


if __name__ == "__main__":
    main()
