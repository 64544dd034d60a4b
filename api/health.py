"""GET /healthz: the state of each dependency, 200 when all are up, 503 otherwise; GET /metrics."""

from __future__ import annotations

import hmac
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse, JsonResponse

from lib import kafka, metrics


def _check(fn) -> dict:
    started = time.perf_counter()
    try:
        detail = fn()
        state = {"ok": True}
        if detail:
            state.update(detail)
    except Exception as exc:  # noqa: BLE001 - report any failure as "down"
        state = {"ok": False, "error": type(exc).__name__}
    state["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return state


def _database():
    with connection.cursor() as cur:
        cur.execute("SELECT name FROM storage_dialect")
        row = cur.fetchone()
    return {"dialect": row[0] if row else None}


def _redis():
    cache.set("healthz", "1", timeout=10)
    if cache.get("healthz") != "1":
        raise RuntimeError("redis did not return what was written")


def _kafka():
    if not kafka.ping():
        raise ConnectionError("broker unreachable")


def metrics_view(request):
    """GET /metrics: Prometheus exposition of this API (summed over gunicorn workers when
    PROMETHEUS_MULTIPROC_DIR is set). With METRICS_TOKEN set, only ``Authorization:
    Bearer <METRICS_TOKEN>`` may scrape. No label names a patient or a device."""
    token = settings.METRICS_TOKEN
    if token and not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse(status=403)
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)


def healthz(request):
    checks = {"database": _check(_database), "redis": _check(_redis), "kafka": _check(_kafka)}
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)
