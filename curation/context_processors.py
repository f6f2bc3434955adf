from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from .roles import Role, user_role


def roles(request: HttpRequest) -> dict:
    """Expose the user's role to templates, for showing or hiding links only (views check)."""
    role = user_role(request.user)
    return {
        "user_role": role,
        "is_lead": role is not None and role >= Role.LEAD,
        "is_admin": role is not None and role >= Role.ADMIN,
        "default_required_approvals": settings.REVIEW_REQUIRED_APPROVALS,
    }
