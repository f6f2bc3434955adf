"""SFT throughput: ``training.scripts.sft`` (what the app launches: CALM callback, metrics file,
record weights, optional iw-SFT) against a bare TRL ``SFTTrainer`` script on the same records, the
same model and the same settings, each in its own process. Prints both side by side and the ratio.

    python -m training.scripts.bench sft                      # the tiny random Qwen3 on the CPU
    python -m training.scripts.bench sft --model /models/Qwen3-4B-Thinking-2507 \\
        --train_file var/datasets/3-ab12/tokens.jsonl --device cuda --steps 30 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def _settings(args) -> dict:
    return {
        "per_device_train_batch_size": args.batch_size,
        "gradient_accumulation_steps": 1,
        "max_steps": args.steps,
        "learning_rate": 1e-5,
        "lr_scheduler_type": "constant",
        "max_length": args.max_length,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "use_cpu": args.device == "cpu",
        "bf16": args.dtype == "bfloat16",
        "gradient_checkpointing": args.gradient_checkpointing,
        "seed": 0,
    }


def _bare(spec_path: str) -> int:
    """The baseline: a plain TRL script on pre-tokenized records (loss on the same tokens)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from .data import load_sft_records

    spec = json.loads(Path(spec_path).read_text())
    records = load_sft_records(spec["train_file"], train_on_hints=True)
    rows = [
        {"input_ids": r["input_ids"], "completion_mask": [int(x != -100) for x in r["labels"]]}
        for r in records
    ]
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[spec["dtype"]]
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=dtype)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(
            output_dir=spec["output_dir"], completion_only_loss=True, **spec["settings"]
        ),
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(spec["model"]),
    )
    out = trainer.train()
    print("BENCH " + json.dumps(out.metrics))
    return 0


def _timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[:4])} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return wall, done.stdout


def bench_sft(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="calm-bench-sft-"))
    model, train_file = args.model, args.train_file
    if not model:
        from curation.engine.tiny_model import build_tiny_model

        model = str(build_tiny_model(work / "tiny"))
    if not train_file:
        train_file = str(_synthetic_records(model, work / "tokens.jsonl", n=args.records))
    settings = _settings(args)
    results: dict[str, dict] = {}
    for round_ in range(args.repeats):
        spec = {"model": model, "train_file": train_file, "dtype": args.dtype,
                "output_dir": str(work / f"bare-{round_}"), "settings": settings}  # fmt: skip
        (work / "bare.json").write_text(json.dumps(spec))
        wall, out = _timed(
            [sys.executable, "-m", "training.scripts.bench", "_bare", str(work / "bare.json")]
        )
        metrics = json.loads(out.split("BENCH ", 1)[1].splitlines()[0])
        _keep(results, "bare TRL SFTTrainer", wall, metrics)

        config = {**settings, "dtype": args.dtype, "model_name_or_path": model,
                  "train_file": train_file, "output_dir": str(work / f"calm-{round_}")}  # fmt: skip
        (work / "calm.yaml").write_text(yaml.safe_dump(config))
        metrics_file = work / f"calm-{round_}.jsonl"
        wall, _ = _timed([sys.executable, "-m", "training.scripts.sft",
                          "--config", str(work / "calm.yaml"),
                          "--metrics_file", str(metrics_file)])  # fmt: skip
        logs = [json.loads(line)["logs"] for line in metrics_file.read_text().splitlines()
                if '"event": "log"' in line]  # fmt: skip
        summary = next(log for log in reversed(logs) if "train_runtime" in log)
        _keep(results, "training.scripts.sft (CALM Studio)", wall, summary)
    return {"model": model, "train_file": train_file, "settings": settings, "results": results}


def _keep(results: dict, name: str, wall: float, metrics: dict) -> None:
    best = results.get(name)
    row = {"wall_s": wall, "train_runtime_s": metrics["train_runtime"],
           "samples_per_s": metrics["train_samples_per_second"],
           "steps_per_s": metrics["train_steps_per_second"]}  # fmt: skip
    if best is None or row["train_runtime_s"] < best["train_runtime_s"]:
        results[name] = row  # the best of the repeats: the least disturbed run


def _synthetic_records(model: str, path: Path, *, n: int) -> Path:
    """CALM-shaped token records (prompt, model text, interpreter output, hint) in the model's
    vocabulary, so the labels mask has every kind of token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    enc = lambda text: tok.encode(text, add_special_tokens=False)  # noqa: E731
    lines = []
    for i in range(n):
        parts = [
            (enc(f"Maximize 3x with 0 <= x <= {i + 2}. Think, then write Pyomo code."), 0),
            (enc("<think>\nLet me model it.\n```python\nprint(3 * 4)\n```\n" * 3), 1),
            (enc("```output\n12\n```\n"), 2),
            (enc("Wait, I should use the solver's value instead of computing by hand."), 3),
            (enc(f" So the answer is {3 * (i + 2)}.\n</think>\n\\boxed{{{3 * (i + 2)}}}"), 1),
        ]
        ids = [t for seg, _ in parts for t in seg]
        tags = [tag for seg, tag in parts for _ in seg]
        lines.append(json.dumps({"id": f"b{i}", "input_ids": ids, "token_tags": tags}))
    path.write_text("\n".join(lines) + "\n")
    return path


def print_table(report: dict) -> None:
    rows = report["results"]
    base = rows["bare TRL SFTTrainer"]
    print(f"model {report['model']}\ndata  {report['train_file']}")
    s = report["settings"]
    print(f"{s['max_steps']} steps x batch {s['per_device_train_batch_size']}, max_length "
          f"{s['max_length']}, {'cpu' if s['use_cpu'] else 'accelerator'}\n")  # fmt: skip
    print(f"{'':30} {'samples/s':>10} {'train s':>9} {'wall s':>8} {'vs bare':>8}")
    for name, row in rows.items():
        ratio = row["samples_per_s"] / base["samples_per_s"] if base["samples_per_s"] else 0
        print(f"{name:30} {row['samples_per_s']:>10.2f} {row['train_runtime_s']:>9.2f} "
              f"{row['wall_s']:>8.1f} {ratio:>7.2f}x")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_bare"]:
        return _bare(argv[1])
    parser = argparse.ArgumentParser(prog="python -m training.scripts.bench")
    sub = parser.add_subparsers(dest="which", required=True)
    sft = sub.add_parser("sft", help="SFT throughput: training.scripts.sft vs a bare TRL script")
    sft.add_argument("--model", help="a local model folder (default: the tiny random Qwen3)")
    sft.add_argument("--train_file", help="token-level JSONL (default: synthetic records)")
    sft.add_argument("--records", type=int, default=64)
    sft.add_argument("--steps", type=int, default=20)
    sft.add_argument("--batch_size", type=int, default=4)
    sft.add_argument("--max_length", type=int, default=1024)
    sft.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    sft.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    sft.add_argument("--gradient_checkpointing", action="store_true")
    sft.add_argument("--repeats", type=int, default=2)
    sft.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = bench_sft(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
