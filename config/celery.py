"""The Celery app. Tasks live in each app's tasks.py; the beat schedule is here."""

from __future__ import annotations

import os
import time

from celery import Celery, signals
from celery.schedules import crontab
from django.conf import settings

from lib import metrics

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("healthstream")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_started(task_id=None, **_kwargs) -> None:
    _started[task_id] = time.monotonic()


@signals.task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **_kwargs) -> None:
    """Task run time by task name and final state (healthstream_celery_task_seconds)."""
    began = _started.pop(task_id, None)
    if began is not None and task is not None:
        metrics.CELERY_TASK_SECONDS.labels(task.name, state or "UNKNOWN").observe(time.monotonic() - began)


@signals.worker_ready.connect
def _serve_metrics(**_kwargs) -> None:
    # the main process serves; with PROMETHEUS_MULTIPROC_DIR set it sums the pool's children
    metrics.serve_if_configured()


app.conf.beat_schedule = {
    "storage-maintenance": {
        "task": "ingest.tasks.storage_maintenance",
        "schedule": crontab(minute=15),
    },
    "forecasting-nightly-retrain": {
        "task": "forecasting.tasks.retrain_forecasters",
        "schedule": crontab(hour=2, minute=30),
    },
    "forecasting-daily-forecast": {
        "task": "forecasting.tasks.forecast_all",
        "schedule": crontab(hour=4, minute=0),
    },
    "coaching-daily": {
        "task": "coaching.tasks.daily",
        "schedule": crontab(hour=6, minute=0),
    },
    "notify-sweep": {
        "task": "alerts.notify.tasks.sweep",
        "schedule": settings.NOTIFY_SWEEP_S,
    },
    "notify-yellow-digest": {
        "task": "alerts.notify.tasks.yellow_digest",
        "schedule": crontab(minute=0),
    },
    "coaching-sweep-new-alerts": {
        "task": "coaching.tasks.sweep_new_alerts",
        "schedule": 60.0,
    },
}
