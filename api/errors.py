"""One error format for the whole API: ``{"errors": [{"field": ..., "reason": ...}]}``.

Also its one OpenAPI schema (``ApiErrorsSerializer``, ``errors(...)``), and the
translation of the alert workflow's errors into HTTP answers.
"""

from __future__ import annotations

from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from alerts import workflow
from care.access import audit
from care.models import AuditEvent


class ApiErrorItemSerializer(serializers.Serializer):
    field = serializers.CharField()
    reason = serializers.CharField()


class ApiErrorsSerializer(serializers.Serializer):
    errors = ApiErrorItemSerializer(many=True)


def errors(*codes: int) -> dict[int, type[ApiErrorsSerializer]]:
    """OpenAPI responses for these error codes, all in the one format."""
    return {code: ApiErrorsSerializer for code in codes}


#: The error answers of an authenticated API view.
ERR = errors(400, 401, 403, 404, 409, 429)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "conflict"


def error_response(errors: list[dict], code: int, headers: dict | None = None) -> Response:
    return Response({"errors": errors}, status=code, headers=headers)


def from_workflow(exc: workflow.WorkflowError) -> exceptions.APIException:
    """The HTTP meaning of a workflow refusal: 403, 409, else 400 naming the field."""
    if isinstance(exc, workflow.NotAllowed):
        return exceptions.PermissionDenied(exc.reason)
    if isinstance(exc, workflow.AlreadyResolved):
        return Conflict(exc.reason)
    return exceptions.ValidationError({exc.field: exc.reason})


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


REFUSALS = (exceptions.NotAuthenticated, exceptions.AuthenticationFailed, exceptions.PermissionDenied,
            exceptions.NotFound)


def _audit_refusal(exc, context, code: int) -> None:
    """Every refused access is audited: who (if anyone), the route's ids, from where."""
    request = context.get("request")
    if request is None:
        return
    ids = {k: v for k, v in (context.get("kwargs") or {}).items() if k.endswith("_id")}
    audit(request, None, "refused", outcome=AuditEvent.REFUSED, status=code, method=request.method, **ids)


def exception_handler(exc, context):
    if isinstance(exc, workflow.WorkflowError):
        exc = from_workflow(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, REFUSALS):
        _audit_refusal(exc, context, response.status_code)
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
    else:
        detail = getattr(exc, "detail", None) or response.data
        errors = [{"field": "(request)", "reason": str(detail.get("detail", detail) if isinstance(detail, dict) else detail)}]
    response.data = {"errors": errors}
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and "Retry-After" not in response:
        response["Retry-After"] = "60"
    return response
