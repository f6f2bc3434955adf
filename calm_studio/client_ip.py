"""The client's address for the login throttle: behind the documented proxy (deploy/nginx sets
X-Forwarded-For to the address it saw), the proxy's header; from anyone else, the socket's
address. A header from a client that is not a trusted proxy is ignored, so it cannot pick the
address it is throttled under."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if remote in settings.TRUSTED_PROXY_IPS and forwarded.strip():
        # The proxy appends the address it saw: the last entry is the one it vouches for.
        return forwarded.split(",")[-1].strip() or remote
    return remote
