from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from curation.formats.problem_files import parse_problem_file
from curation.models import ModelEndpoint
from curation.roles import Role
from curation.services.endpoints import embedded_endpoint_values, environment_endpoint_values
from curation.services.problems import problems_import
from curation.services.users import user_create_or_update

DEMO_FILE = Path(__file__).resolve().parents[2] / "demo" / "demo_problems.jsonl"


class Command(BaseCommand):
    help = "Load the demo problem set and create the demo admin account (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options) -> None:
        parsed = parse_problem_file(DEMO_FILE.read_bytes(), filename=DEMO_FILE.name)
        totals = problems_import(records=parsed.records).totals()
        self.stdout.write(
            f"Demo problems: {totals['created']} created, {totals['updated']} updated, "
            f"{totals['unchanged']} unchanged."
        )
        self.stdout.write(self._default_endpoint())
        if get_user_model().objects.filter(username=username).exists():
            self.stdout.write(
                f"Demo admin '{username}' exists (its password was printed when it was created; "
                f"a new one: python manage.py create_user {username} --role admin "
                "--reset-password)."
            )
            return
        _, password, _ = user_create_or_update(username=username, role=Role.ADMIN)
        self.stdout.write(self.style.SUCCESS(f"Demo admin created: {username} / {password}"))
        self.stdout.write("This password is shown once; change it after logging in.")

    def _default_endpoint(self) -> str:
        """The default Reasoner and Intervener: the endpoint named by the environment
        (``CALM_DEFAULT_ENDPOINT_URL`` + ``_MODEL`` [+ ``_API_KEY_ENV``], e.g. a vLLM server
        on a GPU host), else the embedded llama.cpp model that ``make run`` serves."""
        values = environment_endpoint_values()
        from_environment = values is not None
        if values is None:
            values = embedded_endpoint_values()
        if values is None:
            return "Default endpoint: none (CALM_LOCAL_MODEL=off; add one in the admin)."
        name = values.pop("name")
        others = ModelEndpoint.objects.exclude(name=name)
        values["is_default_reasoner"] = not others.filter(is_default_reasoner=True).exists()
        values["is_default_intervener"] = not others.filter(is_default_intervener=True).exists()
        if from_environment:  # the environment is the source of truth for this one
            endpoint, created = ModelEndpoint.objects.update_or_create(name=name, defaults=values)
        else:  # an admin may have tuned the local one: never overwrite it
            endpoint, created = ModelEndpoint.objects.get_or_create(name=name, defaults=values)
        verb = "created" if created else "kept as configured"
        return f"Default endpoint {endpoint.name} at {endpoint.base_url}: {verb}."
