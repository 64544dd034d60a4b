"""Advice for patients and what patients tell us back.

* ``Recommendation``: one piece of advice made by a rule (coaching/rules.py) for one
  patient on one day, with the reason (signals, values, baseline) and the guideline.
* ``Feedback``: the patient's answer to a recommendation (helpful or not, dismissed,
  context). Dismissed or unhelpful advice stays away for a while (rules.COOLDOWN_DAYS).
* ``ContextReport``: something the patient reports about their life (alcohol, travel,
  illness, stress) over a period. It annotates alerts that overlap it, changes the
  wording of advice, and may quiet detectors for a stated time (``alerts.models.DetectorQuiet``).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from alerts.models import Alert, DetectorQuiet
from care.models import Patient

CATEGORIES = ("sleep", "activity", "recovery", "care_team")
PRIORITIES = ("high", "medium", "low")
CONTEXT_TAGS = ("alcohol", "travel", "illness", "stress", "caffeine", "medication", "other")


class Recommendation(models.Model):
    ACTIVE, DISMISSED, EXPIRED = "active", "dismissed", "expired"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="recommendations")
    rule = models.CharField(max_length=48)
    category = models.CharField(max_length=16, choices=[(c, c) for c in CATEGORIES])
    priority = models.CharField(max_length=8, choices=[(p, p) for p in PRIORITIES])
    title = models.CharField(max_length=120)
    message = models.TextField()
    reason = models.JSONField(default=dict)
    guideline = models.JSONField(default=dict)
    day = models.DateField()
    trigger = models.CharField(max_length=16, default="daily")
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=12, default=ACTIVE,
        choices=[(s, s) for s in (ACTIVE, DISMISSED, EXPIRED)],
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "id"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "rule", "day"], name="one_advice_per_rule_and_day")
        ]
        indexes = [models.Index(fields=["patient", "status", "day"])]


class Feedback(models.Model):
    recommendation = models.ForeignKey(
        Recommendation, on_delete=models.CASCADE, related_name="feedback"
    )
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    helpful = models.BooleanField(null=True, blank=True)
    dismissed = models.BooleanField(default=False)
    context = models.JSONField(default=list, blank=True)
    comment = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["patient", "created_at"])]


class ContextReport(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="context_reports")
    tags = models.JSONField(default=list)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    note = models.CharField(max_length=500, blank=True)
    source = models.CharField(max_length=16, default="patient")
    created_at = models.DateTimeField(default=timezone.now)
    quiets = models.ManyToManyField(
        DetectorQuiet, blank=True, related_name="+",
        help_text="the detectors this report quieted (alerts.DetectorQuiet)")

    class Meta:
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["patient", "starts_at", "ends_at"])]
