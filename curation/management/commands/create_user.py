from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from curation.roles import Role
from curation.services.users import user_create_or_update


class Command(BaseCommand):
    help = "Create a user with a role (reviewer, lead, admin), or change an existing user's role."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, help="reviewer, lead or admin")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password", help="set this password (default: generate one for a new user)"
        )
        parser.add_argument(
            "--reset-password", action="store_true", help="generate and print a new password"
        )

    def handle(self, *args, username: str, role: str, email: str, password, reset_password, **o):
        try:
            parsed_role = Role.from_name(role)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if reset_password and not password:
            import secrets

            password = secrets.token_urlsafe(12)
        user, new_password, created = user_create_or_update(
            username=username, role=parsed_role, email=email, password=password
        )
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} {user.username} with role {parsed_role.group_name}.")
        if new_password:
            self.stdout.write(f"Password: {new_password}")
