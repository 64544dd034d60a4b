"""Outages of the services behind the API answer 503 with Retry-After, never 500.

``ServiceUnavailableMiddleware`` turns an exception that means "a service is
unreachable" (PostgreSQL, Redis, Kafka), raised anywhere in a view, in DRF's
authentication or in another middleware below it, into ``503`` with the API's error
format and ``Retry-After``. Every other exception is left alone (a bug stays a 500).

Redis in the ingest path is treated differently: the device rate limiter fails open
with a warning at most once a minute (lib/ratelimit.py says why), so a Redis outage
never reaches this middleware from an upload.
"""

from __future__ import annotations

import logging
import sys

import orjson
from django.core.signals import got_request_exception
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpResponse

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5


def unreachable(exc: BaseException) -> str | None:
    """The service an exception says is unreachable ("database", "redis", "broker"), or None."""
    import redis
    from kafka.errors import KafkaError

    if isinstance(exc, OperationalError | InterfaceError):
        return "database"
    if isinstance(exc, DatabaseError) and isinstance(exc.__cause__, OSError):
        return "database"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | redis.BusyLoadingError):
        return "redis"
    if isinstance(exc, KafkaError):
        return "broker"
    return None


def unavailable_response(service: str) -> HttpResponse:
    body = {"errors": [{"field": f"({service})",
                        "reason": f"the {service} is unreachable for now; retry later"}]}
    response = HttpResponse(orjson.dumps(body), status=503, content_type="application/json")
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


class ServiceUnavailableMiddleware:
    """503 + Retry-After for a service outage, wherever below this middleware it surfaced.

    A view's exception arrives in ``process_exception``. One raised by a middleware
    below this one (sessions in Redis, say) has already been made a 500 response by
    Django when it gets here; ``got_request_exception``, sent while it was handled,
    marked the request, and the 500 is replaced.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        service = getattr(request, "_hs_unreachable", None)
        if response.status_code == 500 and service:
            return self._unavailable(request, service)
        return response

    def process_exception(self, request, exc):
        service = unreachable(exc)
        return None if service is None else self._unavailable(request, service)

    @staticmethod
    def _unavailable(request, service: str) -> HttpResponse:
        log.warning("%s %s: 503, the %s is unreachable", request.method, request.path, service)
        return unavailable_response(service)


def _mark_request(sender, request=None, **kwargs) -> None:
    """Remember on the request which service an uncaught exception says is unreachable."""
    service = unreachable(sys.exc_info()[1]) if sys.exc_info()[1] is not None else None
    if request is not None and service:
        request._hs_unreachable = service


got_request_exception.connect(_mark_request, dispatch_uid="healthstream-outage")
