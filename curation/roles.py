"""Roles, as Django groups, and the permission helpers that views open with.

Roles are ordered: a lead can do everything a reviewer can, an admin everything a lead can.
A superuser counts as an admin. A user in no role group can log in but sees no page.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


class Role(IntEnum):
    REVIEWER = 1  # reviews and labels
    LEAD = 2  # also imports problems and runs batches
    ADMIN = 3  # also launches training, manages models and the flaw taxonomy

    @property
    def group_name(self) -> str:
        return self.name.lower()

    @classmethod
    def from_name(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            choices = ", ".join(r.group_name for r in cls)
            raise ValueError(f"unknown role {name!r} (choose from {choices})") from None


def user_role(user) -> Role | None:
    """The highest role the user holds, or None for anonymous users and users in no role."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    cached = getattr(user, "_calm_role", False)
    if cached is not False:
        return cached
    names = set(user.groups.values_list("name", flat=True))
    held = [role for role in Role if role.group_name in names]
    role = max(held) if held else None
    user._calm_role = role
    return role


def has_role(user, minimum: Role) -> bool:
    role = user_role(user)
    return role is not None and role >= minimum


def require_role(user, minimum: Role) -> None:
    """Raise PermissionDenied (403) unless the user holds ``minimum`` or a higher role."""
    if not has_role(user, minimum):
        raise PermissionDenied(f"This page needs the {minimum.group_name} role.")


def role_required(minimum: Role) -> Callable:
    """View decorator: login is enforced by middleware, the role here, before anything else."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            require_role(request.user, minimum)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
