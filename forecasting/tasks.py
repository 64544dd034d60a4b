"""Celery tasks: nightly retraining and daily forecasts for every active patient.

Both are idempotent (a night's model is trained once; a day's forecasts are upserted)
and retried on database errors. A cache lock keeps two workers from running the same
job at once; the lock expires on its own if a worker dies.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import OperationalError

log = logging.getLogger(__name__)
LOCK_S = 6 * 3600


def _locked(name: str):
    return cache.add(f"forecasting:lock:{name}", "1", timeout=LOCK_S)


def _unlock(name: str) -> None:
    cache.delete(f"forecasting:lock:{name}")


@shared_task(bind=True, autoretry_for=(OperationalError,), retry_backoff=60, max_retries=3,
             acks_late=True)
def retrain_forecasters(self, metrics: list[str] | None = None) -> dict:
    """Train a candidate per metric and promote it only if it beats the current one."""
    from forecasting import service

    if not _locked("retrain"):
        log.info("retrain already running elsewhere: skipped")
        return {"skipped": True}
    try:
        out: dict[str, dict] = {}
        for metric in metrics or settings.FORECAST_METRICS:
            try:
                result = service.train_metric(metric)
            except service.NoData as exc:
                log.info("retrain %s: %s", metric, exc)
                out[metric] = {"skipped": str(exc)}
                continue
            out[metric] = {"version": result.version.label, "promoted": result.promoted,
                           "reused": result.reused}
        return out
    finally:
        _unlock("retrain")


@shared_task(bind=True, autoretry_for=(OperationalError,), retry_backoff=60, max_retries=3,
             acks_late=True)
def forecast_all(self, metrics: list[str] | None = None) -> dict:
    """Forecast the next 14 days of every active patient with each promoted model."""
    from forecasting import service

    if not _locked("forecast"):
        log.info("forecast already running elsewhere: skipped")
        return {"skipped": True}
    try:
        out = {}
        for metric in metrics or settings.FORECAST_METRICS:
            try:
                out[metric] = service.forecast_metric(metric)
            except service.NoData as exc:
                log.info("forecast %s: %s", metric, exc)
                out[metric] = 0
        return out
    finally:
        _unlock("forecast")


@shared_task(bind=True, autoretry_for=(OperationalError,), retry_backoff=30, max_retries=3,
             acks_late=True)
def bootstrap_forecasts(self, metrics: list[str] | None = None) -> dict:
    """Start-up (``make run``): train and forecast once for each metric that has no
    promoted model yet, so forecasts exist before the first nightly run."""
    from forecasting import registry

    todo = [m for m in (metrics or settings.FORECAST_METRICS) if registry.promoted(m) is None]
    if not todo:
        return {"skipped": "every metric already has a promoted model"}
    trained = retrain_forecasters.run(todo)
    return {"trained": trained, "forecast": forecast_all.run(todo)}
