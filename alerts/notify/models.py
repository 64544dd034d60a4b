"""Who hears about an alert, how, and what was sent.

* ``OnCallShift``: a team's on-call clinician for a period. Red alerts and escalations
  go to whoever is on call for the patient's teams (``alerts.notify.routing``).
* ``WebhookEndpoint``: a team's signed webhook (a clinic's paging system). The secret
  is kept as given because signing needs it; it is never shown again or logged.
* ``NotificationPreference``: one clinician's email choices, quiet hours and digest hour.
* ``Delivery``: the delivery log, one row per (event, channel, recipient). The unique
  key is what makes the sweep exactly-once across workers; ``status`` runs
  pending -> sent, or pending -> retrying ... -> dead (the dead letters) after
  ``NOTIFY_MAX_ATTEMPTS`` failed tries.
"""

from __future__ import annotations

from datetime import datetime, time

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from alerts.models import Alert
from alerts.notify import targets
from care.models import CareTeam, Clinician, validate_timezone


def validate_webhook_url(value: str) -> None:
    """A webhook must be http(s) and, unless NOTIFY_WEBHOOK_ALLOW_PRIVATE is on, point at
    a public address (checked again at every delivery: ``alerts.notify.targets``)."""
    if not value.startswith(("https://", "http://")):
        raise ValidationError("a webhook URL must start with https:// (or http:// on a private network)")
    try:
        targets.check_url(value)
    except targets.TargetRefused as exc:
        raise ValidationError(str(exc)) from None


class OnCallShift(models.Model):
    team = models.ForeignKey(CareTeam, on_delete=models.CASCADE, related_name="+")
    clinician = models.ForeignKey(Clinician, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()

    class Meta:
        db_table = "notify_oncallshift"
        ordering = ["team", "starts_at"]
        indexes = [models.Index(fields=["team", "starts_at", "ends_at"])]
        constraints = [models.CheckConstraint(condition=models.Q(ends_at__gt=models.F("starts_at")),
                                              name="oncall_ends_after_start")]

    def __str__(self) -> str:
        return f"{self.clinician} on call for {self.team} {self.starts_at:%Y-%m-%d %H:%M}"


class WebhookEndpoint(models.Model):
    team = models.ForeignKey(CareTeam, on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=500, validators=[validate_webhook_url])
    secret = models.CharField(max_length=128, help_text="HMAC-SHA256 key; never shown or logged")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "notify_webhookendpoint"

    def __str__(self) -> str:
        return f"webhook {self.pk} of {self.team}"


class NotificationPreference(models.Model):
    """A clinician's choices. Without a row, the defaults below apply."""

    clinician = models.OneToOneField(Clinician, on_delete=models.CASCADE, related_name="+")
    email = models.BooleanField(default=True, help_text="email at all (off: webhooks only)")
    red_when_off_call = models.BooleanField(
        default=False, help_text="also email red alerts of my teams' patients when not on call")
    yellow_digest = models.BooleanField(default=True)
    digest_hour = models.PositiveSmallIntegerField(default=8, help_text="local hour, 0-23")
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])

    class Meta:
        db_table = "notify_preference"

    def in_quiet_hours(self, at: datetime) -> bool:
        """True when ``at`` falls in the quiet hours (local time; they may span midnight)."""
        if self.quiet_start is None or self.quiet_end is None or self.quiet_start == self.quiet_end:
            return False
        import zoneinfo

        local: time = at.astimezone(zoneinfo.ZoneInfo(self.timezone)).time()
        if self.quiet_start < self.quiet_end:
            return self.quiet_start <= local < self.quiet_end
        return local >= self.quiet_start or local < self.quiet_end


class Delivery(models.Model):
    RED, ESCALATION, DIGEST = "red", "escalation", "digest"
    KINDS = [(k, k) for k in (RED, ESCALATION, DIGEST)]
    EMAIL, WEBHOOK = "email", "webhook"
    CHANNELS = [(c, c) for c in (EMAIL, WEBHOOK)]
    PENDING, SENDING, RETRYING, SENT, DEAD = "pending", "sending", "retrying", "sent", "dead"
    STATUSES = [(s, s) for s in (PENDING, SENDING, RETRYING, SENT, DEAD)]

    event = models.CharField(max_length=64, help_text="e.g. red:17, escalation:5, digest:2026-11-30")
    kind = models.CharField(max_length=16, choices=KINDS)
    channel = models.CharField(max_length=16, choices=CHANNELS)
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    clinician = models.ForeignKey(Clinician, null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="+")
    endpoint = models.ForeignKey(WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="+")
    recipient = models.CharField(max_length=64, help_text="clinician:<id> or webhook:<id>")
    status = models.CharField(max_length=16, choices=STATUSES, default=PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    payload = models.JSONField(default=dict, blank=True,
                               help_text="what a digest lists (alert ids); no health values")
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "notify_delivery"
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["event", "channel", "recipient"],
                                               name="one_delivery_per_event_and_recipient")]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
