"""The alert domain's tables: alerts, the clinicians' actions and notes on them, and
the per-patient detector settings (clinicians' thresholds, patients' quiet periods).

Statuses and severities are defined once, in ``alerts.states``; "active" is defined
once, as ``Alert.objects.active()``.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from alerts import states
from care.models import CareTeam, Clinician, Patient


class AlertQuerySet(models.QuerySet):
    def active(self, at: datetime | None = None, prefix: str = "") -> AlertQuerySet:
        """Alerts that want attention: open, acknowledged, escalated, or snoozed with the
        snooze over at ``at`` (default now). The one definition of "active"."""
        return self.filter(active_q(at, prefix))


def active_q(at: datetime | None = None, prefix: str = "") -> models.Q:
    """``AlertQuerySet.active`` as a Q, for a related lookup (``prefix="alerts__"``)."""
    at = at or timezone.now()
    return models.Q(**{f"{prefix}status__in": states.ATTENTION}) | models.Q(
        **{f"{prefix}status": states.SNOOZED, f"{prefix}snoozed_until__lte": at})


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(v, v.replace("_", " ")) for v in values]


class Alert(models.Model):
    """One episode flagged by one detector. Identity: (patient, detector, window_start).

    Re-emitting the same alert updates it (for example yellow to red); it never
    creates a second row. The sink (``alerts.sink``) writes it; the workflow
    (``alerts.workflow``) changes its status.
    """

    SEVERITIES = _choices(states.SEVERITIES)
    OPEN, ACKNOWLEDGED, SNOOZED, ESCALATED, RESOLVED = states.STATUSES
    STATUSES = _choices(states.STATUSES)

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="alerts")
    detector = models.CharField(max_length=48)
    severity = models.CharField(max_length=12, choices=SEVERITIES)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    evidence = models.JSONField(
        default=dict, help_text="the evidence at the alert's peak: when it first reached its "
        "highest severity (what a clinician judges it by)"
    )
    raise_evidence = models.JSONField(default=dict, help_text="the evidence when it was raised")
    latest_evidence = models.JSONField(default=dict, help_text="the evidence of the latest update")
    latest_severity = models.CharField(
        max_length=12, choices=SEVERITIES, blank=True,
        help_text="the severity of the latest update (``severity`` is the highest reached)"
    )
    status = models.CharField(max_length=16, choices=STATUSES, default=OPEN)
    signal_closed = models.BooleanField(
        default=False, help_text="the detector saw the signal return to normal"
    )
    opened_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    resolution_reason = models.CharField(max_length=300, blank=True)
    verdict = models.CharField(
        max_length=16, choices=_choices(states.VERDICTS), blank=True, default="", db_default="",
        help_text="the resolving clinician's judgement: actionable, not actionable or unsure"
    )
    event_seq = models.PositiveIntegerField(
        default=0, help_text="the detector's change counter for this episode (alerts.v1 seq): "
        "the sink applies a change only if it is newer"
    )

    objects = AlertQuerySet.as_manager()

    class Meta:
        db_table = "alerts_alert"
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "detector", "window_start"], name="alert_identity"
            )
        ]
        indexes = [models.Index(fields=["status", "opened_at"])]


class AlertAction(models.Model):
    """One step a clinician took on an alert (the queue's history, newest last).

    The alert row holds the current state; this table holds how it got there: who
    acknowledged, snoozed until when, escalated to whom, resolved why.
    """

    ACKNOWLEDGE, SNOOZE, UNSNOOZE, ESCALATE, RESOLVE, REOPEN = (
        "acknowledge", "snooze", "unsnooze", "escalate", "resolve", "reopen",
    )
    ACTIONS = _choices((ACKNOWLEDGE, SNOOZE, UNSNOOZE, ESCALATE, RESOLVE, REOPEN))

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="actions")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=16, choices=ACTIONS)
    at = models.DateTimeField(default=timezone.now)
    from_status = models.CharField(max_length=16)
    to_status = models.CharField(max_length=16)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    escalated_to_clinician = models.ForeignKey(
        Clinician, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    escalated_to_team = models.ForeignKey(
        CareTeam, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=300, blank=True)
    verdict = models.CharField(max_length=16, choices=_choices(states.VERDICTS), blank=True)

    class Meta:
        db_table = "alerts_alertaction"
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["alert", "at"])]


class AlertNote(models.Model):
    """A clinician's free-text note on an alert. Health data: never logged."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.TextField(max_length=2000)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "alerts_alertnote"
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["alert", "at"])]


class DetectorThreshold(models.Model):
    """A clinician's (or the verdict feedback's) per-patient override of a detector's
    parameters. Every change is kept with before and after, who and why, in
    ``history`` (django-simple-history: the one change-history mechanism)."""

    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="detector_thresholds"
    )
    detector = models.CharField(max_length=48)
    params = models.JSONField(default=dict)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords(table_name="alerts_detectorthreshold_history")

    class Meta:
        db_table = "alerts_detectorthreshold"
        unique_together = [("patient", "detector")]


class DetectorQuiet(models.Model):
    """While active, the care-team queue hides this detector's non-red alerts for the
    patient, and the detectors may ask ``alerts.queries.quieted_detectors``.

    Made when a patient reports context (coaching.ContextReport links its quiets)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    detector = models.CharField(max_length=48)
    starts_at = models.DateTimeField()
    until = models.DateTimeField()

    class Meta:
        db_table = "alerts_detectorquiet"
        indexes = [models.Index(fields=["patient", "detector", "until"])]
