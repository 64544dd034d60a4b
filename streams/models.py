"""Alerts raised by the detectors, and per-patient detector overrides."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Alert(models.Model):
    """One episode flagged by one detector. Identity: (patient, detector, window_start).

    Re-emitting the same alert updates it (for example yellow to red); it never
    creates a second row.
    """

    SEVERITIES = [("info", "info"), ("yellow", "yellow"), ("red", "red")]
    OPEN, ACKNOWLEDGED, SNOOZED, ESCALATED, RESOLVED = (
        "open", "acknowledged", "snoozed", "escalated", "resolved",
    )
    STATUSES = [(s, s) for s in (OPEN, ACKNOWLEDGED, SNOOZED, ESCALATED, RESOLVED)]

    patient = models.ForeignKey("api.Patient", on_delete=models.CASCADE, related_name="alerts")
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
    event_seq = models.PositiveIntegerField(
        default=0, help_text="the detector's change counter for this episode (alerts.v1 seq): "
        "the sink applies a change only if it is newer"
    )

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "detector", "window_start"], name="alert_identity"
            )
        ]
        indexes = [models.Index(fields=["status", "opened_at"])]


class DetectorThreshold(models.Model):
    """A clinician's per-patient override of a detector's parameters."""

    patient = models.ForeignKey(
        "api.Patient", on_delete=models.CASCADE, related_name="detector_thresholds"
    )
    detector = models.CharField(max_length=48)
    params = models.JSONField(default=dict)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        unique_together = [("patient", "detector")]
