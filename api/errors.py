"""One error format for the whole API: ``{"errors": [{"field": ..., "reason": ...}]}``."""

from __future__ import annotations

from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def error_response(errors: list[dict], code: int, headers: dict | None = None) -> Response:
    return Response({"errors": errors}, status=code, headers=headers)


def _flatten(detail, prefix: str = "") -> list[dict]:
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = "(request)" if key in {"non_field_errors", "detail"} else key
            out.extend(_flatten(value, f"{prefix}.{name}" if prefix else name))
        return out
    if isinstance(detail, list):
        out = []
        for item in detail:
            out.extend(_flatten(item, prefix))
        return out
    return [{"field": prefix or "(request)", "reason": str(detail)}]


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
    else:
        detail = getattr(exc, "detail", None) or response.data
        errors = [{"field": "(request)", "reason": str(detail.get("detail", detail) if isinstance(detail, dict) else detail)}]
    response.data = {"errors": errors}
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and "Retry-After" not in response:
        response["Retry-After"] = "60"
    return response
