"""Request checks that hold for every route, the API and the dashboard alike."""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse

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
