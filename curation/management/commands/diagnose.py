from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from curation.models import Diagnosis, Job, ModelEndpoint, Trajectory
from curation.services.diagnoses import diagnose_job_run, diagnosis_request
from curation.services.trajectories import GenerationError


class Command(BaseCommand):
    help = "Ask the Intervener for the first flaw of a trajectory and print its verdict."

    def add_arguments(self, parser) -> None:
        parser.add_argument("trajectory_id", type=int)
        parser.add_argument("--endpoint", help="Intervener endpoint name (default: the default)")
        parser.add_argument("--queue", action="store_true", help="enqueue for the workers")

    def handle(self, *args, trajectory_id: int, endpoint: str | None, queue: bool, **o) -> None:
        trajectory = Trajectory.objects.filter(pk=trajectory_id).first()
        if trajectory is None:
            raise CommandError(f"no trajectory with id {trajectory_id}")
        chosen = ModelEndpoint.objects.filter(name=endpoint).first() if endpoint else None
        if endpoint and chosen is None:
            raise CommandError(f"no endpoint named {endpoint!r}")
        try:
            job = diagnosis_request(trajectory=trajectory, endpoint=chosen, enqueue=queue)
        except GenerationError as exc:
            raise CommandError(str(exc)) from None
        if queue:
            self.stdout.write(f"Queued job #{job.pk} on the gpu queue.")
            return
        job = diagnose_job_run(job_id=job.pk, worker="manage.py")
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"job #{job.pk} {job.status}: {job.error}")
        d = Diagnosis.objects.get(pk=job.result["diagnosis_id"])
        if d.status == Diagnosis.Status.ERROR:
            self.stdout.write(f"Intervener error: {d.error}\nRaw answer:\n{d.raw}")
        elif d.flawless:
            self.stdout.write(f"Flawless (diagnosis #{d.pk}). {d.rationale}")
        else:
            made_by = f"the check {d.check_name}" if d.source == "checks" else "the LLM"
            self.stdout.write(
                f"First flaw at step {d.step_index}: {d.flaw_type} (diagnosis #{d.pk}, "
                f"by {made_by})\n"
                f"Hint: {d.hint}\nWhy: {d.rationale}"
            )
