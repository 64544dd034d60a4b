"""GET /healthz: the state of each dependency, 200 when all are up, 503 otherwise."""

from __future__ import annotations

import time

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse

from lib import kafka


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


def healthz(request):
    checks = {"database": _check(_database), "redis": _check(_redis), "kafka": _check(_kafka)}
    ok = all(c["ok"] for c in checks.values())
    return JsonResponse({"ok": ok, "checks": checks}, status=200 if ok else 503)
