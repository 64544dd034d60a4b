"""Who is cared for and by whom: patients, devices, clinicians, care teams, consent, audit.

Raw samples are not here: they live in the samples hypertable (ingest/storage.py),
written with COPY by the ingest sink.
"""

from __future__ import annotations

import hashlib
import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.timezone import now
from simple_history.models import HistoricalRecords

DEVICE_TOKEN_PREFIX = "hsd_"


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"{value!r} is not an IANA time zone") from exc


class Patient(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="patient",
    )
    display_name = models.CharField(max_length=120)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    birth_year = models.PositiveSmallIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        db_table = "care_patient"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Patient {self.pk}"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class DeviceQuerySet(models.QuerySet):
    def active(self) -> DeviceQuerySet:
        return self.filter(revoked_at__isnull=True)


class Device(models.Model):
    """A wearable or phone that pushes data for one patient, with a revocable token.

    Only the token's SHA-256 is stored; the raw token is shown once, at creation.
    """

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="devices")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=32, default="watch")
    token_hash = models.CharField(max_length=64, unique=True)
    token_hint = models.CharField(max_length=12, help_text="first characters, to recognise it")
    created_at = models.DateTimeField(default=now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    objects = DeviceQuerySet.as_manager()
    # before/after of every change, who and when (the token's hash and last-seen stay out)
    history = HistoricalRecords(table_name="care_device_history", excluded_fields=["token_hash", "last_seen_at"])

    class Meta:
        db_table = "care_device"
        ordering = ["id"]

    @classmethod
    def issue(cls, patient: Patient, name: str, kind: str = "watch") -> tuple[Device, str]:
        raw = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
        device = cls.objects.create(
            patient=patient, name=name, kind=kind, token_hash=hash_token(raw), token_hint=raw[:10]
        )
        return device, raw

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = now()
            self.save(update_fields=["revoked_at"])

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Clinician(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="clinician"
    )
    display_name = models.CharField(max_length=120)

    class Meta:
        db_table = "care_clinician"

    def __str__(self) -> str:
        return self.display_name


class CareTeam(models.Model):
    name = models.CharField(max_length=120, unique=True)
    members = models.ManyToManyField(Clinician, through="TeamMembership", related_name="teams")
    patients = models.ManyToManyField(Patient, through="Assignment", related_name="care_teams")

    class Meta:
        db_table = "care_careteam"

    def __str__(self) -> str:
        return self.name


class TeamMembership(models.Model):
    team = models.ForeignKey(CareTeam, on_delete=models.CASCADE)
    clinician = models.ForeignKey(Clinician, on_delete=models.CASCADE)
    role = models.CharField(max_length=32, default="clinician",
                            help_text='"clinician", or "lead": may export the team\'s audit trail')

    history = HistoricalRecords(table_name="care_teammembership_history")

    LEAD = "lead"

    class Meta:
        db_table = "care_teammembership"
        unique_together = [("team", "clinician")]


class Assignment(models.Model):
    team = models.ForeignKey(CareTeam, on_delete=models.CASCADE)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE)
    assigned_at = models.DateTimeField(default=now)

    class Meta:
        db_table = "care_assignment"
        unique_together = [("team", "patient")]


class Consent(models.Model):
    """A patient grants one care team access to their data; revoking cuts it at once."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="consents")
    team = models.ForeignKey(CareTeam, on_delete=models.CASCADE, related_name="consents")
    granted_at = models.DateTimeField(default=now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(table_name="care_consent_history")

    class Meta:
        db_table = "care_consent"
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "team"],
                condition=models.Q(revoked_at__isnull=True),
                name="one_active_consent_per_team",
            )
        ]


class AuditEvent(models.Model):
    """Who read or changed which patient's data, or was refused, or failed to sign in:
    what, when, from where (``address``) and with what ``outcome``."""

    OK, REFUSED, FAILED = "ok", "refused", "failed"

    at = models.DateTimeField(default=now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    patient = models.ForeignKey(Patient, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64)
    path = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    address = models.CharField(max_length=64, blank=True, default="", db_default="",
                               help_text="the client's address (lib.clientip)")
    outcome = models.CharField(max_length=16, default="ok", db_default="ok",
                               help_text="ok, refused (403/404/401) or failed (a failed sign-in)")

    class Meta:
        db_table = "care_auditevent"
        ordering = ["-at"]
        indexes = [models.Index(fields=["patient", "at"])]


INVITATION_PREFIX = "hsi_"


class Invitation(models.Model):
    """A one-time code from a team lead: accepting it creates the login, and for a patient
    the patient with an assignment and a consent to the inviting team, for a clinician the
    clinician with a membership in it. Only the code's SHA-256 is stored."""

    PATIENT, CLINICIAN = "patient", "clinician"

    team = models.ForeignKey(CareTeam, on_delete=models.CASCADE, related_name="invitations")
    kind = models.CharField(max_length=16, choices=[(PATIENT, PATIENT), (CLINICIAN, CLINICIAN)])
    role = models.CharField(max_length=32, default="clinician", help_text="a clinician's role in the team")
    display_name = models.CharField(max_length=120)
    code_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "care_invitation"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Invitation {self.pk} ({self.kind}, team {self.team_id})"

    @property
    def state(self) -> str:
        if self.used_at is not None:
            return "used"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now() else "open"

    @staticmethod
    def new_code() -> str:
        return INVITATION_PREFIX + secrets.token_urlsafe(24)
