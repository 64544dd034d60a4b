"""Request checks that hold for every route, the API and the dashboard alike."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpResponse, JsonResponse

from lib import logs

NUL_REASON = "must not contain NUL (0x00) characters"


def _nul_field(request) -> str | None:
    params = [request.GET]
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        params.append(request.POST)
    for qd in params:
        for key, values in qd.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return key.replace("\x00", "")[:40] or "(request)"
    return None


class RequestIdMiddleware:
    """Every request gets an id (a valid ``X-Request-ID`` from the client or proxy, else a
    new one), set for the logs (``lib.logs.request_id``) and echoed in the answer."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = logs.new_request_id(request.headers.get("X-Request-ID"))
        request.request_id = rid
        # set, not reset after: Django logs a 4xx/5xx ("django.request") after the
        # middleware chain returns, and that line must carry the id too; the next
        # request on this thread sets both again
        logs.request_id.set(rid)
        logs.batch_id.set("")
        response = self.get_response(request)
        response["X-Request-ID"] = rid
        return response


class RejectNulMiddleware:
    """A NUL byte in a query or form parameter answers 400 naming the parameter.

    PostgreSQL refuses NUL in text, so ``?q=a%00`` used to reach the database and end
    in a 500 (in the API's ``q`` and ``detector`` and the dashboard's filters)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        field = _nul_field(request)
        if field is not None:
            if request.path.startswith("/api/"):
                return JsonResponse({"errors": [{"field": field, "reason": NUL_REASON}]}, status=400)
            return HttpResponse(f"{field}: {NUL_REASON}".encode(), status=400,
                                content_type="text/plain; charset=utf-8")
        return self.get_response(request)


#: A strict policy: scripts, styles, images and connections from this server only; the
#: templates carry no inline script, handler or style (tests/dashboard/test_queue_views.py).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")


class SecurityHeadersMiddleware:
    """Content-Security-Policy on every page this app renders, and ``Cache-Control:
    no-store`` on everything but static files (placed after WhiteNoise, which answers
    those itself): API answers and dashboard pages carry health data that no browser or
    proxy cache should keep."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CSP)
        response["Cache-Control"] = "no-store"
        return response


class SessionIdleTimeoutMiddleware:
    """Sign a dashboard session out after SESSION_IDLE_TIMEOUT_S without activity.

    The queue's own polling (GET of a path in SESSION_PASSIVE_PATHS) is not activity: a
    queue left open on an unattended screen must still time out. The last activity is
    written at most once a minute, so a busy session costs no session write per request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            now = int(time.time())
            last = request.session.get(_LAST_ACTIVE)
            if isinstance(last, int) and now - last > settings.SESSION_IDLE_TIMEOUT_S:
                logout(request)
            elif not (request.method == "GET" and request.path in settings.SESSION_PASSIVE_PATHS):
                if not isinstance(last, int) or now - last >= 60:
                    request.session[_LAST_ACTIVE] = now
        return self.get_response(request)


_LAST_ACTIVE = "hs_last_active"
