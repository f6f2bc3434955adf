from __future__ import annotations

import random

from django.core.management.base import BaseCommand, CommandError

from curation.models import Benchmark, Job, ModelEndpoint, Problem
from curation.services.endpoints import reasoner_default
from curation.services.trajectories import GenerationError, generate_job_run, trajectories_generate


class Command(BaseCommand):
    help = (
        "Generate trajectories for problems of a benchmark with a Reasoner endpoint. Runs here "
        "by default (with progress); --queue hands the job to the gpu workers instead."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--benchmark", required=True, help="benchmark name or slug")
        parser.add_argument("--limit", type=int, default=1)
        parser.add_argument("--endpoint", help="endpoint name (default: the default Reasoner)")
        parser.add_argument("--samples", type=int, default=1, help="trajectories per problem")
        parser.add_argument("--sample-seed", type=int, help="pick problems at random")
        parser.add_argument("--max-new-tokens", type=int)
        parser.add_argument("--queue", action="store_true", help="enqueue for the workers")

    def handle(self, *args, **opts) -> None:
        bench = Benchmark.objects.filter(name=opts["benchmark"]).first() or (
            Benchmark.objects.filter(slug=opts["benchmark"]).first()
        )
        if bench is None:
            raise CommandError(f"no benchmark {opts['benchmark']!r}")
        problems = list(Problem.objects.filter(benchmark=bench).order_by("source_index", "pk"))
        if opts["sample_seed"] is not None:
            random.Random(opts["sample_seed"]).shuffle(problems)  # noqa: S311 - sampling
        problems = problems[: opts["limit"]]
        endpoint = self._endpoint(opts["endpoint"])
        config = {"max_new_tokens": opts["max_new_tokens"]} if opts["max_new_tokens"] else {}
        try:
            job = trajectories_generate(
                problems=problems,
                endpoint=endpoint,
                samples=opts["samples"],
                config=config,
                enqueue=opts["queue"],
            )
        except GenerationError as exc:
            raise CommandError(str(exc)) from None
        if opts["queue"]:
            self.stdout.write(f"Queued job #{job.pk} on the gpu queue.")
            return
        self.stdout.write(
            f"Generating {len(problems) * opts['samples']} trajectories with {endpoint}…"
        )
        job = generate_job_run(job_id=job.pk, worker="manage.py")
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"job #{job.pk} {job.status}: {job.error}")
        for tid in job.result["trajectory_ids"]:
            self.stdout.write(f"trajectory {tid}")

    def _endpoint(self, name: str | None) -> ModelEndpoint:
        if name:
            endpoint = ModelEndpoint.objects.filter(name=name).first()
            if endpoint is None:
                raise CommandError(f"no endpoint named {name!r}")
            return endpoint
        endpoint = reasoner_default()
        if endpoint is None:
            raise CommandError("no Reasoner endpoint: create one in the admin or with demo_setup")
        return endpoint
