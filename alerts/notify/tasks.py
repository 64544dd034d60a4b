"""Celery tasks that deliver notifications.

* ``alerts.notify.tasks.sweep`` (beat, every ``NOTIFY_SWEEP_S``, 10 s by default): finds
  red alerts that are open and escalations made in the last ``LOOKBACK``, plans their
  deliveries (once each: the delivery log's unique key), and enqueues every delivery
  that is due (new ones, retries whose time has come, stale claims).
* ``alerts.notify.tasks.deliver(delivery_id)``: one try of one delivery.
* ``alerts.notify.tasks.yellow_digest`` (beat, hourly): plans and sends the digests.

Why a sweep and not a hook where the row is written: the alert sink writes alert rows
with SQL in its own process (no Django signal fires), and a sweep also picks up what
a stopped worker left, so nothing is lost between writing the row and enqueuing a
task. The price is up to one sweep interval of latency.
"""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from alerts import states
from alerts.models import Alert, AlertAction
from alerts.notify import delivery

#: How far back a sweep looks: an alert older than this when notifications start (a
#: first deploy, a long outage) is not announced late; it is in the queue.
LOOKBACK = timedelta(hours=1)


@shared_task(name="alerts.notify.tasks.sweep", ignore_result=True)
def sweep() -> int:
    now = timezone.now()
    since = now - LOOKBACK
    for alert in Alert.objects.filter(severity=states.RED, status=states.OPEN, updated_at__gte=since):
        delivery.plan_red(alert, now)
    steps = (AlertAction.objects.filter(action=AlertAction.ESCALATE, at__gte=since)
             .select_related("alert"))
    for step in steps:
        delivery.plan_escalation(step, now)
    ids = delivery.due()
    for pk in ids:
        deliver.delay(pk)
    return len(ids)


@shared_task(name="alerts.notify.tasks.deliver", ignore_result=True)
def deliver(delivery_id: int) -> str:
    return delivery.attempt(delivery_id)


@shared_task(name="alerts.notify.tasks.yellow_digest", ignore_result=True)
def yellow_digest() -> int:
    delivery.plan_digests(timezone.now())
    ids = delivery.due()
    for pk in ids:
        deliver.delay(pk)
    return len(ids)
