"""``python manage.py storm_bench``: the whole STORM cycle on fresh state, one command.

    python manage.py storm_bench --tiny --json               # the tiny model, a minute or two
    python manage.py storm_bench --limit-train 30 --test-benchmark nl4opt --limit-test 30
    python manage.py storm_bench --reasoner http://gpu:8000/v1#Qwen/Qwen3-4B-Thinking-2507 \\
        --tokenizer /models/qwen3 --base-model /models/qwen3 --out docs/bench/storm-<date>

Fresh state: the cycle runs in a child process of this command on a new SQLite database and a
new var folder under ``--workdir`` (default ``var/bench/storm-<time>/``; open its pages with
``DATABASE_URL=sqlite:///<workdir>/storm.sqlite3 CALM_VAR_DIR=<workdir>/var python manage.py
runserver``). ``--here`` runs it on the configured database instead. The workflow itself is
``training.services.storm``; this command picks the problems and endpoints and prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

DEMO = Path(settings.BASE_DIR) / "curation" / "demo" / "demo_problems.jsonl"
_FRESH = "CALM_STORM_FRESH"
# Passed on to the child as they were given (``--here`` and ``--workdir`` are the parent's).
_VALUE_OPTIONS = ("train_problems", "train_benchmark", "test_problems", "test_benchmark",
                  "limit_train", "limit_test", "max_interventions", "reasoner", "intervener",
                  "tokenizer", "base_model", "tiny_model", "grpo_steps", "sft_preset",
                  "eval_preset", "grpo_preset", "out", "serve")  # fmt: skip
_FLAG_OPTIONS = ("tiny", "json")


class Command(BaseCommand):
    help = "The whole STORM cycle (CALM, golden set, SFT, serve, evaluate, GRPO), fresh state."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--train-problems", help="a problem file for the train pool")
        parser.add_argument("--train-benchmark", help="a benchmarks folder file, e.g. nl4opt")
        parser.add_argument("--test-problems", help="a problem file for the test problems")
        parser.add_argument("--test-benchmark", help="a file of the benchmarks folder")
        parser.add_argument("--limit-train", type=int, help="the first N train problems")
        parser.add_argument("--limit-test", type=int, help="the first N test problems")
        parser.add_argument("--max-interventions", type=int, default=3)
        parser.add_argument("--reasoner", default="embedded", help="embedded | URL[#model] | PATH")
        parser.add_argument("--intervener", help="like --reasoner (default: the Reasoner)")
        parser.add_argument("--tokenizer", default="", help="local tokenizer of a URL endpoint")
        parser.add_argument(
            "--base-model",
            help="local weights to train and evaluate (default: the embedded model's trainable "
            "weights)",
        )
        parser.add_argument(
            "--tiny", action="store_true",
            help="the tiny test model for everything (the CALM batch: scripted stand-ins)",
        )  # fmt: skip
        parser.add_argument("--tiny-model", help="a built tiny model folder (default: build one)")
        parser.add_argument("--grpo-steps", type=int, default=2)
        parser.add_argument(
            "--serve", choices=["auto", "gguf", "transformers"], default=None,
            help="how the checkpoint is served and evaluated: gguf (converted, on llama-server, "
            "beside the embedded GGUF it came from), transformers, or auto (gguf when the base "
            "is the embedded model's trainable weights and llama-server is built)",
        )  # fmt: skip
        parser.add_argument("--sft-preset", help="default sft (sft_tiny with --tiny)")
        parser.add_argument("--eval-preset", help="default eval (eval_tiny with --tiny)")
        parser.add_argument("--grpo-preset", help="default grpo_cort (grpo_tiny with --tiny)")
        parser.add_argument("--workdir", help="the fresh state (default var/bench/storm-<time>)")
        parser.add_argument("--out", help="keep the record here: summary.json and steps.log")
        parser.add_argument("--here", action="store_true",
                            help="run on the configured database, not on fresh state")  # fmt: skip
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        if options["here"] or os.environ.get(_FRESH) == "1":
            return self._run(options)
        return self._fresh(options)

    # --- the parent: a fresh database and var folder, the cycle in a child ---------------------

    def _fresh(self, options) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        workdir = Path(options["workdir"] or Path(settings.VAR_DIR) / "bench" / f"storm-{stamp}")
        workdir = workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        if (workdir / "storm.sqlite3").exists():
            raise CommandError(f"{workdir} holds an earlier run: choose a new --workdir")
        argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "storm_bench"]
        for name in _VALUE_OPTIONS:
            if options.get(name) is not None:
                value = options[name]
                if name in ("out", "tiny_model", "train_problems", "test_problems", "base_model"):
                    value = _absolute(value)
                argv += [f"--{name.replace('_', '-')}", str(value)]
        argv += [f"--{name}" for name in _FLAG_OPTIONS if options.get(name)]
        env = {k: v for k, v in os.environ.items() if k not in ("CALM_RUNS_DIR",)}
        env.update({
            _FRESH: "1",
            "DATABASE_URL": f"sqlite:///{workdir / 'storm.sqlite3'}",
            "CALM_VAR_DIR": str(workdir / "var"),
            "CALM_BENCHMARKS_DIR": str(settings.BENCHMARKS_DIR),
            "DJANGO_SETTINGS_MODULE": "calm_studio.settings",
        })  # fmt: skip
        if not options["json"]:
            self.stderr.write(f"storm_bench: fresh state in {workdir}")
        proc = subprocess.Popen(argv, cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE,
                                text=True)  # fmt: skip
        for line in proc.stdout:
            self.stdout.write(line, ending="")
        if proc.wait() != 0:
            raise CommandError(f"the cycle stopped (exit {proc.returncode}); its state: {workdir}")

    # --- the child (or --here): the cycle itself ----------------------------------------------

    def _run(self, options) -> None:
        import logging

        from django.core.management import call_command
        from tqdm import tqdm

        from training.services.storm import STEPS, StormError, StormLog, storm_run

        logging.getLogger("httpx").setLevel(logging.WARNING)
        if os.environ.get(_FRESH) == "1":
            call_command("migrate", verbosity=0)
        bar = tqdm(total=len(STEPS), unit="step", desc="STORM", dynamic_ncols=True,
                   file=sys.stderr)  # fmt: skip
        log = StormLog(echo=lambda line: bar.write(line, file=sys.stderr))
        server = None
        try:
            storm, server = self._options(options, log)

            def advance(step: str) -> None:
                bar.set_postfix(done=step)
                bar.update(1)

            result = storm_run(options=storm, log=log, advance=advance)
        except (StormError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
            if server is not None:
                server.stop()
        self._keep(result, log, options)
        if options["json"]:
            self.stdout.write(json.dumps(result["summary"]))
        else:
            self.stdout.write(report(result["summary"]))

    def _options(self, options, log):
        from training.services.storm import (
            StormOptions,
            tiny_endpoints,
            tiny_options,
            train_pool,
        )

        train, test = self._problems(options)
        log("split", f"{len(train)} train and {len(test)} test problems chosen")
        common = {"train_problems": train, "test_problems": test,
                  "max_interventions": options["max_interventions"],
                  "grpo_steps": options["grpo_steps"]}  # fmt: skip
        server = None
        if options["tiny"]:
            from curation.engine.tiny_model import build_tiny_model

            model = options["tiny_model"] or build_tiny_model(Path(settings.VAR_DIR) / "tiny-model")
            pool = train_pool(train, test)
            base, reasoner, intervener = tiny_endpoints(model_dir=model, problems=pool)
            extra = tiny_options(pool_size=len(pool))
            extra["label"] = "storm bench (tiny)"
        else:
            base, reasoner, intervener, server = self._real_endpoints(options)
            extra = {"sft_overrides": _cpu_sft_overrides(), "label": "storm bench"}
            if not options["base_model"] and options["reasoner"] == "embedded":
                # The trainable weights were made from the embedded GGUF: that is the base as
                # llama.cpp serves it, beside which a GGUF checkpoint is compared.
                extra["base_served"] = reasoner
        extra["serve"] = options.get("serve") or "auto"
        for key in ("sft_preset", "eval_preset", "grpo_preset"):
            if options[key]:
                extra[key] = options[key]
        storm = StormOptions(reasoner=reasoner, intervener=intervener, base_model=base,
                             **common, **extra)  # fmt: skip
        return storm, server

    def _real_endpoints(self, options):
        from curation.bench.loop import _endpoint, _ensure_server
        from curation.models import ModelEndpoint

        base_path = options["base_model"] or _embedded_trainable()
        reasoner = _endpoint(options["reasoner"], "reasoner", options["tokenizer"])
        spec = options["intervener"] or options["reasoner"]
        if spec == options["reasoner"]:
            reasoner.role = ModelEndpoint.Role.BOTH
            reasoner.save(update_fields=["role"])
            intervener = reasoner
        else:
            intervener = _endpoint(spec, "intervener", options["tokenizer"])
        base = ModelEndpoint.objects.create(
            name=f"{Path(base_path).name} (storm_bench base)", role=ModelEndpoint.Role.REASONER,
            backend=ModelEndpoint.Backend.TRANSFORMERS, model=str(base_path),
            prompts=reasoner.prompts, extra={} if _cuda() else {"device": "cpu"},
        )  # fmt: skip
        return base, reasoner, intervener, _ensure_server([reasoner, intervener])

    def _problems(self, options):
        train_source = _source(options["train_problems"], options["train_benchmark"]) or DEMO
        test_source = _source(options["test_problems"], options["test_benchmark"])
        train = _import(train_source)
        if test_source is None or test_source == train_source:
            # One source: the problems' own split (train and test; dev stays out).
            test = [p for p in train if p.split == "test"]
            train = [p for p in train if p.split == "train"]
        else:
            test = _import(test_source)
        train = train[: options["limit_train"] or None]
        test = test[: options["limit_test"] or None]
        if not test:
            raise CommandError(
                f"{train_source.name} has no problem in its test split: name the test problems "
                "with --test-problems FILE or --test-benchmark NAME"
            )
        return train, test

    def _keep(self, result: dict, log, options) -> None:
        if not options["out"]:
            return
        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(result, indent=2, default=str))
        (out / "steps.log").write_text("\n".join(log.lines) + "\n")
        (out / "report.txt").write_text(report(result["summary"]) + "\n")


def report(s: dict) -> str:
    """Every figure, with the paper's beside it as context (its models, problems and budget
    are not these: a direction, not a target)."""
    paper = s["paper"]

    def pct(value) -> str:
        return "-" if value is None else f"{value:.1%}"

    rows = [
        ("train problems / test problems", f"{s['train_problems']} / {s['test_problems']}", ""),
        ("train-test overlap", str(s["train_test_overlap"]), "0 (must be)"),
        ("golden records (approved as " + s["approved_by"] + ")", str(s["golden_records"]),
         "112 golden (full run)"),
        ("pass@1, base model", _with_ci(s["base"]),
         f"{paper['base']}% (Qwen3-4B-Thinking-2507, macro)"),
        ("pass@1, after SFT", _with_ci(s["trained"]), f"{paper['sft']}% (after CALM SFT)"),
        ("pass@1, after GRPO (not evaluated here)", "-", f"{paper['rl']}% (STORM, SFT + GRPO)"),
        ("any-of-k, base / after SFT",
         f"{pct(s['base']['any_of_k'])} / {pct(s['trained']['any_of_k'])}", ""),
        ("tokens per response, base / after SFT",
         f"{s['base']['response_tokens']} / {s['trained']['response_tokens']}", ""),
        ("code blocks per response, base / after SFT",
         f"{s['base']['code_blocks']} / {s['trained']['code_blocks']}", ""),
        ("served as", s["served_as"], "gguf (issue 20)"),
        ("SFT minutes training / wall (steps, peak MiB)",
         f"{s['sft_minutes']} / {s['sft_wall_minutes']} ({s['sft_steps']}, "
         f"{s['sft_peak_rss_mib']})", "< 90 for 1.5B on 2 cores (issue 20)"),
        ("GRPO steps (minutes per step)", f"{s['grpo_steps']} ({s['grpo_minutes_per_step']})",
         ""),
        ("minutes, whole cycle", str(s["minutes"]), "< 180 on 2 cores (issue 20)"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"\nSTORM cycle: Reasoner {s['reasoner']}, base {s['base_model']}"]
    if s.get("scripted_curation"):
        lines.append(
            "The CALM batch's Reasoner and Intervener were SCRIPTED STAND-INS "
            "(orchestration only); training, serving and evaluation ran the model."
        )
    lines.append(f"{'':<{width}}{'this run':>22}   paper")
    lines += [f"{label:<{width}}{value:>22}   {paper_value}" for label, value, paper_value in rows]
    lines.append(f"rule: {s['base']['rule']}; the paper's figures are its own models and budget: "
                 "context, not a target.")  # fmt: skip
    return "\n".join(lines)


def _with_ci(figures: dict) -> str:
    """pass@1 with its 95% interval: a change inside both intervals is no measurable change."""
    if figures["pass_at_1"] is None:
        return "-"
    ci = figures.get("pass_at_1_ci95")
    span = f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else ""
    return f"{figures['pass_at_1']:.1%}{span}"


def _absolute(value) -> str:
    return str(Path(value).resolve()) if value else value


def _source(path: str | None, benchmark: str | None) -> Path | None:
    if path and benchmark:
        raise CommandError("give a problem file or a benchmark name, not both")
    if path:
        return Path(path)
    if benchmark:
        return Path(settings.BENCHMARKS_DIR) / f"{benchmark}.jsonl"
    return None


def _import(path: Path):
    """The file's problems, imported (idempotent), in the file's order."""
    from curation.formats.problem_files import ImportFileError, parse_problem_file
    from curation.models import Benchmark, Problem
    from curation.services.problems import problems_import

    try:
        parsed = parse_problem_file(path.read_bytes(), filename=path.name)
    except OSError as exc:
        raise CommandError(f"{path}: cannot read ({exc.strerror})") from exc
    except ImportFileError as exc:
        raise CommandError(str(exc)) from exc
    problems_import(records=parsed.records, source=path.name)
    benchmarks = {b.name: b for b in Benchmark.objects.all()}
    found = {
        (p.benchmark_id, p.external_id): p
        for p in Problem.objects.filter(external_id__in=[r.external_id for r in parsed.records])
    }
    return [found[(benchmarks[r.benchmark].pk, r.external_id)] for r in parsed.records]


def _embedded_trainable() -> str:
    """The embedded model's trainable weights, or an error that says how to make them."""
    from curation.engine.serving import local_model

    name = local_model.selected_model_name()
    if name is None:
        raise CommandError("CALM_LOCAL_MODEL=off: name the weights to train with --base-model")
    gguf = local_model.model_path(local_model.get_model(name))
    folder = gguf.with_name(gguf.stem + "-hf")
    # serving.trainable's record (a script: the app reads its folder, never imports it).
    if not (folder / "calm_trainable.json").is_file():
        prepare = "" if gguf.is_file() else "python manage.py prepare_model, then "
        raise CommandError(
            f"the embedded model has no trainable weights at {folder}: make them with "
            f"{prepare}python -m curation.engine.serving.trainable {gguf} (or pass --base-model)"
        )
    return str(folder)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _cpu_sft_overrides(*, cuda: bool | None = None) -> dict:
    """The real model on a machine without a GPU: LoRA in float32 on the CPU, one epoch."""
    if _cuda() if cuda is None else cuda:
        return {}
    return {"use_cpu": True, "bf16": False, "dtype": "float32", "gradient_checkpointing": False,
            "use_peft": True, "lora_r": 16, "lora_alpha": 32, "learning_rate": 1.0e-4,
            "num_train_epochs": 1, "save_strategy": "no"}  # fmt: skip
