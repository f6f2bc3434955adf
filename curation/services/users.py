"""Accounts with a role."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from ..roles import Role


def user_create_or_update(
    *, username: str, role: Role, email: str = "", password: str | None = None
) -> tuple[object, str | None, bool]:
    """Create the user (or update its role) and return (user, new_password, created).

    A password is generated when none is given for a new user; an existing user's password
    is changed only when one is given. Admins are staff superusers, so Django admin works.
    """
    User = get_user_model()
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        new_password = password
        if created and not password:
            new_password = secrets.token_urlsafe(12)
        if new_password:
            user.set_password(new_password)
        if email:
            user.email = email
        user.is_staff = role is Role.ADMIN
        user.is_superuser = role is Role.ADMIN
        user.save()
        role_groups = Group.objects.filter(name__in=[r.group_name for r in Role])
        user.groups.remove(*role_groups)
        user.groups.add(Group.objects.get_or_create(name=role.group_name)[0])
    return user, new_password, created
