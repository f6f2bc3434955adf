"""htmx and an expired session: a full-page login, then back to the page."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
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


class RefuseNulCharactersMiddleware:
    """PostgreSQL cannot store the NUL character in text, so a form field or query parameter
    carrying one would end in a server error deep in a save. Refuse such a request at the door
    with a 400 that says why (uploaded files are not form fields and are checked by their
    parsers)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for params in (request.GET, request.POST):
            for key, values in params.lists():
                if "\x00" in key or any("\x00" in value for value in values):
                    return HttpResponseBadRequest(
                        "Text may not contain the NUL character (\\x00): remove it and try again.",
                        content_type="text/plain; charset=utf-8",
                    )
        return self.get_response(request)
