"""Celery tasks of the coaching engine: daily advice, and advice when an alert opens.

* ``coaching.tasks.daily`` (beat, every morning): fans out one task per active patient.
* ``coaching.tasks.recommend_for_patient(patient_id, trigger, alert_id)``: one patient.
* ``coaching.tasks.on_alert_opened(alert_id)``: whoever opens an alert may call it.
* ``coaching.tasks.sweep_new_alerts`` (beat, every minute): finds alerts opened lately
  and runs ``on_alert_opened`` once for each, so advice follows an alert within a minute
  whatever process wrote the alert row (the streams alert sink writes with SQL).
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from alerts import states
from alerts.models import Alert
from care.models import Patient
from coaching import engine

SWEEP_LOOKBACK = timedelta(minutes=15)
CLAIM_TTL_S = 86_400


@shared_task(name="coaching.tasks.daily", ignore_result=True)
def daily() -> int:
    ids = list(Patient.objects.filter(active=True).values_list("pk", flat=True))
    for pk in ids:
        recommend_for_patient.delay(pk, "daily")
    return len(ids)


@shared_task(name="coaching.tasks.recommend_for_patient", ignore_result=True,
             autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def recommend_for_patient(patient_id: int, trigger: str = "daily", alert_id: int | None = None) -> int:
    return len(engine.recommend(patient_id, trigger=trigger, alert_id=alert_id))


def claim_alert(alert_id: int) -> bool:
    """True once per alert (across workers): Redis SET NX with a day's expiry."""
    return cache.add(f"coaching:alert:{alert_id}", 1, timeout=CLAIM_TTL_S)


@shared_task(name="coaching.tasks.on_alert_opened", ignore_result=True)
def on_alert_opened(alert_id: int) -> int:
    alert = Alert.objects.filter(pk=alert_id).only("patient_id").first()
    if alert is None:
        return 0
    return len(engine.recommend(alert.patient_id, trigger="alert", alert_id=alert_id))


@shared_task(name="coaching.tasks.sweep_new_alerts", ignore_result=True)
def sweep_new_alerts() -> int:
    since = timezone.now() - SWEEP_LOOKBACK
    ids = Alert.objects.filter(opened_at__gte=since, status=states.OPEN).values_list("pk", flat=True)
    done = 0
    for pk in ids:
        if claim_alert(pk):
            on_alert_opened(pk)
            done += 1
    return done
