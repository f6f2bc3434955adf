from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from curation.formats.trajectory_records import trajectory_export
from curation.models import Trajectory


class Command(BaseCommand):
    help = "Print one trajectory as JSON: problem, steps with code and sandbox results, tokens."

    def add_arguments(self, parser) -> None:
        parser.add_argument("trajectory_id", type=int)
        parser.add_argument("--indent", type=int, default=2)

    def handle(self, *args, trajectory_id: int, indent: int, **options) -> None:
        try:
            trajectory = Trajectory.objects.select_related("problem__benchmark", "endpoint").get(
                pk=trajectory_id
            )
        except Trajectory.DoesNotExist:
            raise CommandError(f"no trajectory with id {trajectory_id}") from None
        payload = trajectory_export(trajectory)
        self.stdout.write(json.dumps(payload, indent=indent or None, ensure_ascii=False))
