from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from curation.problem_import import parse_problem_file
from curation.roles import Role
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
