from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from curation.roles import Role, has_role, role_required

from .health import public_health, system_health


@login_not_required  # monitors and load balancers call it: up/down and counts only
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Admins get the full report (hostnames, errors, each worker's sandbox protections)."""
    report = system_health()
    body = report if has_role(request.user, Role.ADMIN) else public_health(report)
    return JsonResponse(body, status=200 if report["ok"] else 503)


@never_cache
@require_GET
@role_required(Role.REVIEWER)
def health_badge(request: HttpRequest) -> HttpResponse:
    """Leads and admins see hostnames and error text in the tooltips; reviewers the ok flags
    and worker counts only (``public_health``)."""
    report = system_health()
    detailed = has_role(request.user, Role.LEAD)
    health = report if detailed else public_health(report)
    return render(request, "_health_badge.html", {"health": health, "detailed": detailed})
