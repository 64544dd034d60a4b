"""What a notification says. Deliberately little: which patient (by id, not name),
which kind of alert in words, its severity and status, when, and the link to the
alert in the dashboard, where the clinician signs in to see the evidence. No
measured values, baselines or notes leave the system by email or webhook: a
clinician needs to know that and where to look, not the numbers, to act on it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings

from alerts.models import Alert, AlertAction
from alerts.notify.models import Delivery

#: Plain words for each detector, with no values (presentation.title carries values).
DETECTOR_WORDS = {
    "nightsignal_rhr": "Resting heart rate above usual at night",
    "illness_rhr": "Possible illness: resting heart rate above usual",
    "cusum_rhr": "Resting heart rate rising",
    "hr_high_at_rest": "Heart rate high at rest",
    "hr_low_at_rest": "Heart rate low at rest",
    "wear_gap": "Watch not worn",
    "sleep_debt": "Short nights in a row",
}


def what(detector: str) -> str:
    return DETECTOR_WORDS.get(detector, detector.replace("_", " ").capitalize())


def alert_url(alert: Alert) -> str:
    return f"{settings.NOTIFY_BASE_URL.rstrip('/')}/dashboard/patients/{alert.patient_id}/#alert-{alert.pk}"


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def alert_summary(alert: Alert) -> dict[str, Any]:
    return {"id": alert.pk, "patient": alert.patient_id, "detector": alert.detector,
            "what": what(alert.detector), "severity": alert.severity, "status": alert.status,
            "opened_at": _iso(alert.opened_at), "url": alert_url(alert)}


def escalation_summary(step: AlertAction) -> dict[str, Any]:
    return {"action": step.pk, "at": _iso(step.at),
            "to_clinician": step.escalated_to_clinician_id, "to_team": step.escalated_to_team_id}


def webhook_body(delivery: Delivery, alert: Alert, step: AlertAction | None) -> dict[str, Any]:
    body: dict[str, Any] = {"event": f"alert.{'escalated' if step else 'red'}",
                            "delivery": delivery.pk, "alert": alert_summary(alert)}
    if step is not None:
        body["escalation"] = escalation_summary(step)
    return body


def email_text(alert: Alert, step: AlertAction | None) -> tuple[str, str]:
    """(subject, body) of a red-alert or escalation email."""
    head = "Escalated to you" if step else "Red alert"
    subject = f"[healthstream] {head}: patient {alert.patient_id}, {what(alert.detector)}"
    lines = [f"{head}: {what(alert.detector)}.",
             f"Patient {alert.patient_id}; severity {alert.severity}; status {alert.status}; "
             f"opened {alert.opened_at:%Y-%m-%d %H:%M} UTC.",
             "", f"Open it: {alert_url(alert)}"]
    if step is not None and step.reason:
        lines.insert(1, "The escalating clinician gave a reason; it is on the alert page.")
    lines += ["", "You get this because you are on call or were named in an escalation."]
    return subject, "\n".join(lines)


def digest_text(alerts: list[Alert]) -> tuple[str, str]:
    """(subject, body) of the yellow digest: one line per alert, no values."""
    subject = f"[healthstream] {len(alerts)} yellow alert{'s' if len(alerts) != 1 else ''} today"
    lines = ["Yellow alerts opened in the last 24 hours that are still active:", ""]
    lines += [f"- Patient {a.patient_id}: {what(a.detector)} ({a.status}), {alert_url(a)}" for a in alerts]
    return subject, "\n".join(lines)
