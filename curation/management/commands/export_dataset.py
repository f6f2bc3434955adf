from __future__ import annotations

import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from curation.models import DatasetVersion
from curation.selectors.datasets import golden_trajectories
from curation.services.datasets import FILES, DatasetError, dataset_file, dataset_freeze


class Command(BaseCommand):
    help = (
        "Freeze the golden set into a new dataset version (--freeze NAME), and/or copy a "
        "version's exports (tokens.jsonl, chat.jsonl, README.md) into a folder."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--freeze", metavar="NAME", help="freeze a new version first")
        parser.add_argument("--benchmark", action="append", default=[], help="slug; repeatable")
        parser.add_argument("--no-hint-training", action="store_true")
        parser.add_argument("--note", default="")
        parser.add_argument("--dataset", type=int, help="an existing dataset version id")
        parser.add_argument("--out", type=Path, help="copy the exports into this folder")

    def handle(self, *args, **opts) -> None:
        try:
            if opts["freeze"]:
                version = dataset_freeze(
                    name=opts["freeze"], note=opts["note"],
                    trajectories=golden_trajectories(benchmarks=opts["benchmark"]),
                    train_on_hints=not opts["no_hint_training"],
                    filters={"benchmarks": opts["benchmark"]},
                )  # fmt: skip
                self.stdout.write(
                    f"Froze version {version.pk}: {version.counts['trajectories']} trajectories, "
                    f"sha256 {version.content_hash}"
                )
            elif opts["dataset"]:
                version = DatasetVersion.objects.filter(pk=opts["dataset"]).first()
                if version is None:
                    raise CommandError(f"no dataset version {opts['dataset']}")
            else:
                raise CommandError("give --freeze NAME or --dataset ID")
            if opts["out"]:
                opts["out"].mkdir(parents=True, exist_ok=True)
                for name in FILES:
                    shutil.copyfile(dataset_file(version, name), opts["out"] / name)
                self.stdout.write(f"Wrote {', '.join(FILES)} to {opts['out']}")
        except DatasetError as exc:
            raise CommandError(str(exc)) from None
