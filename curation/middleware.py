"""htmx and an expired session: a full-page login, then back to the page."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url


class HtmxLoginRedirectMiddleware:
    """htmx follows a redirect inside its request and would swap the login page into a step
    card or the health badge. For an htmx request that is sent to the login page, answer
    ``HX-Redirect`` instead: the browser loads the login page whole, with ``next`` set to the
    page the person was on (path and query only, so it stays on this site).

    Sits before LoginRequiredMiddleware, so it sees the redirect that one returns."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.headers.get("HX-Request") != "true" or response.status_code != 302:
            return response
        login = resolve_url(settings.LOGIN_URL)
        if urlsplit(response["Location"]).path != login:
            return response
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        back = current.path or "/"
        if current.query:
            back += f"?{current.query}"
        redirect = HttpResponse(status=200)
        redirect["HX-Redirect"] = f"{login}?{urlencode({'next': back})}"
        return redirect
