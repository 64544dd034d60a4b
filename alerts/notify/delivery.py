"""Planning and sending notifications: the delivery log is the outbox.

* ``plan_red`` / ``plan_escalation`` / ``plan_digest`` insert ``Delivery`` rows; the
  unique (event, channel, recipient) key makes planning the same event twice, or from
  two workers at once, insert nothing new.
* ``attempt(delivery_id)`` claims the row atomically (``filter(...).update(...)``),
  sends it, and marks it sent; a failure schedules the next try after
  ``NOTIFY_RETRY_BASE_S * 2**(tries-1)`` seconds, and after ``NOTIFY_MAX_ATTEMPTS``
  tries the row is dead (a dead letter, kept with the last error for a person to see).
  A webhook whose host is not a public address (``alerts.notify.targets``, resolved at
  send time) is dead at once: retrying would not make it safe.
* Logs name the delivery, the channel and the error's kind; never a secret, a URL (it
  may carry a token), an address or health data.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

import orjson
import requests
from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import F, Q
from django.utils import timezone

from alerts import states
from alerts.models import Alert, AlertAction
from alerts.notify import content, routing, signing, targets
from alerts.notify.models import Delivery

log = logging.getLogger(__name__)

#: A claim older than this is taken to be a worker that died while sending.
STALE_CLAIM = timedelta(minutes=5)
WEBHOOK_TIMEOUT_S = (3.0, 10.0)


class DeliveryFailed(Exception):
    """A try failed in a way worth retrying (the message names the reason, no secrets)."""


class DeliveryRefused(DeliveryFailed):
    """A try that must not be repeated: the webhook's target is not a public address.
    The row is dead at once, with the reason, for a person to fix the endpoint."""


def _insert(rows: list[Delivery]) -> int:
    before = Delivery.objects.filter(event__in={r.event for r in rows}).count() if rows else 0
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    return (Delivery.objects.filter(event__in={r.event for r in rows}).count() - before) if rows else 0


def plan_red(alert: Alert, at: datetime) -> int:
    event = f"red:{alert.pk}"
    rows = [Delivery(event=event, kind=Delivery.RED, channel=Delivery.EMAIL, alert=alert,
                     clinician=c, recipient=f"clinician:{c.pk}")
            for c in routing.red_email_recipients(alert, at)]
    rows += [Delivery(event=event, kind=Delivery.RED, channel=Delivery.WEBHOOK, alert=alert,
                      endpoint=e, recipient=f"webhook:{e.pk}") for e in routing.red_endpoints(alert)]
    return _insert(rows)


def plan_escalation(step: AlertAction, at: datetime) -> int:
    event = f"escalation:{step.pk}"
    alert = step.alert
    payload = {"action": step.pk}
    rows = [Delivery(event=event, kind=Delivery.ESCALATION, channel=Delivery.EMAIL, alert=alert,
                     clinician=c, recipient=f"clinician:{c.pk}", payload=payload)
            for c in routing.escalation_email_recipients(step, at)]
    rows += [Delivery(event=event, kind=Delivery.ESCALATION, channel=Delivery.WEBHOOK, alert=alert,
                      endpoint=e, recipient=f"webhook:{e.pk}", payload=payload)
             for e in routing.escalation_endpoints(step, alert.patient_id)]
    return _insert(rows)


def due(now: datetime | None = None) -> list[int]:
    """Deliveries to try now: new, retries whose time has come, and stale claims."""
    now = now or timezone.now()
    q = (Q(status__in=[Delivery.PENDING, Delivery.RETRYING], next_attempt_at__lte=now)
         | Q(status=Delivery.SENDING, claimed_at__lt=now - STALE_CLAIM))
    return list(Delivery.objects.filter(q).order_by("next_attempt_at").values_list("pk", flat=True)[:500])


def claim(delivery_id: int, now: datetime | None = None) -> Delivery | None:
    """Take the row for one try, atomically across workers; None if it is not due."""
    now = now or timezone.now()
    q = (Q(status__in=[Delivery.PENDING, Delivery.RETRYING], next_attempt_at__lte=now)
         | Q(status=Delivery.SENDING, claimed_at__lt=now - STALE_CLAIM))
    taken = Delivery.objects.filter(q, pk=delivery_id).update(
        status=Delivery.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not taken:
        return None
    return Delivery.objects.select_related("alert", "clinician__user", "endpoint").get(pk=delivery_id)


def attempt(delivery_id: int) -> str:
    """One try of one delivery; returns its status afterwards ("" if it was not due)."""
    delivery = claim(delivery_id)
    if delivery is None:
        return ""
    try:
        _send(delivery)
    except Exception as exc:  # any failure is retried, then dead-lettered
        return _failed(delivery, exc)
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.SENT, sent_at=timezone.now(),
                                                   last_error="")
    return Delivery.SENT


def _failed(delivery: Delivery, exc: Exception) -> str:
    reason = str(exc) if isinstance(exc, DeliveryFailed) else type(exc).__name__
    if delivery.attempts >= settings.NOTIFY_MAX_ATTEMPTS or isinstance(exc, DeliveryRefused):
        status, next_at = Delivery.DEAD, timezone.now()
        log.error("delivery %s (%s) is dead after %d tries: %s", delivery.pk, delivery.channel,
                  delivery.attempts, reason)
    else:
        status = Delivery.RETRYING
        wait = settings.NOTIFY_RETRY_BASE_S * 2 ** (delivery.attempts - 1)
        next_at = timezone.now() + timedelta(seconds=wait)
        log.warning("delivery %s (%s) try %d failed: %s; next try in %.0f s", delivery.pk,
                    delivery.channel, delivery.attempts, reason, wait)
    Delivery.objects.filter(pk=delivery.pk).update(status=status, next_attempt_at=next_at,
                                                   last_error=reason[:300])
    return status


def _step(delivery: Delivery) -> AlertAction | None:
    action = delivery.payload.get("action") if delivery.kind == Delivery.ESCALATION else None
    return AlertAction.objects.filter(pk=action).first() if action else None


def _send(delivery: Delivery) -> None:
    if delivery.channel == Delivery.WEBHOOK:
        _send_webhook(delivery)
    else:
        _send_email(delivery)


def _send_email(delivery: Delivery) -> None:
    clinician = delivery.clinician
    if clinician is None or not clinician.user.email:
        raise DeliveryFailed("the clinician has no email address")
    if delivery.kind == Delivery.DIGEST:
        ids = delivery.payload.get("alerts", [])
        subject, body = content.digest_text(list(Alert.objects.filter(pk__in=ids).order_by("opened_at")))
    else:
        assert delivery.alert is not None
        subject, body = content.email_text(delivery.alert, _step(delivery))
    EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [clinician.user.email],
                 headers={"X-Healthstream-Delivery": str(delivery.pk)}).send(fail_silently=False)


def _send_webhook(delivery: Delivery) -> None:
    endpoint = delivery.endpoint
    if endpoint is None or not endpoint.active or delivery.alert is None:
        raise DeliveryFailed("the endpoint is gone or inactive")
    body = orjson.dumps(content.webhook_body(delivery, delivery.alert, _step(delivery)))
    ts = int(time.time())
    headers = {"Content-Type": "application/json", "User-Agent": "healthstream-notify/1",
               signing.TIMESTAMP_HEADER: str(ts),
               signing.SIGNATURE_HEADER: signing.sign(endpoint.secret, ts, body),
               "X-Healthstream-Delivery": str(delivery.pk)}
    try:
        with targets.session() as http:
            response = http.post(endpoint.url, data=body, headers=headers,
                                 timeout=WEBHOOK_TIMEOUT_S, allow_redirects=False)
    except targets.TargetRefused as exc:
        raise DeliveryRefused(str(exc)) from None
    except requests.RequestException as exc:
        raise DeliveryFailed(f"webhook unreachable ({type(exc).__name__})") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"webhook answered {response.status_code}")


def plan_digests(now: datetime) -> int:
    """Yellow digests: once per clinician per local day, at the first hour at or after
    their ``digest_hour`` that is outside their quiet hours, listing the yellow alerts
    of their patients opened in the last 24 hours that are still active."""
    import zoneinfo

    from care.access import readable_patients
    from care.models import Clinician

    rows = []
    for clinician in Clinician.objects.select_related("user").order_by("pk"):
        pref = routing.preference(clinician)
        if not (pref.yellow_digest and pref.email and clinician.user.email):
            continue
        local = now.astimezone(zoneinfo.ZoneInfo(pref.timezone))
        if local.hour < pref.digest_hour or pref.in_quiet_hours(now):
            continue
        event = f"digest:{local.date().isoformat()}"
        if Delivery.objects.filter(event=event, recipient=f"clinician:{clinician.pk}").exists():
            continue
        ids = list(Alert.objects.active(now)
                   .filter(severity=states.YELLOW, opened_at__gte=now - timedelta(hours=24),
                           patient__in=readable_patients(clinician.user))
                   .order_by("opened_at").values_list("pk", flat=True)[:200])
        if ids:
            rows.append(Delivery(event=event, kind=Delivery.DIGEST, channel=Delivery.EMAIL,
                                 clinician=clinician, recipient=f"clinician:{clinician.pk}",
                                 payload={"alerts": ids}))
    return _insert(rows)
