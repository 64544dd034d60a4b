"""The Celery app. Tasks live in each app's tasks.py; the beat schedule is here."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("healthstream")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

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
