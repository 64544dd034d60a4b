"""Who may read a patient's data, and the audit of each read. Every view that serves
health data asks here; so does the alert workflow before it escalates."""

from __future__ import annotations

import hashlib
import unicodedata

from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import F, Q, QuerySet

from care.models import AuditEvent, CareTeam, Clinician, Patient
from lib.clientip import client_address


def readable_patients(user) -> QuerySet[Patient]:
    """Patients this user may read: themself, or (clinicians) patients assigned to one of
    their teams who have an active consent for that same team."""
    if not user or not user.is_authenticated or getattr(user, "pk", None) is None:
        return Patient.objects.none()
    # One query whatever the role (no separate look-up of the user's Clinician row): a
    # user without one simply matches no team membership.
    q = Q(user=user) | Q(
        assignment__team__teammembership__clinician__user=user,
        consents__team=F("assignment__team"),
        consents__revoked_at__isnull=True,
    )
    return Patient.objects.filter(q).distinct()


def can_read(user, patient_id: int) -> bool:
    return readable_patients(user).filter(pk=patient_id).exists()


def _actor(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or getattr(user, "pk", None) is None:
        return None  # anonymous, or a device principal (not a user row)
    return user


def audit(request, patient_id: int | None, action: str, /, *, outcome: str = AuditEvent.OK,
          actor=None, **detail) -> None:
    """One audit event: who (the request's user, or ``actor``), which patient, what, when,
    from where, and the outcome. ``detail`` must hold ids and names of things, never
    health values, notes, passwords or tokens."""
    AuditEvent.objects.create(
        actor=actor or _actor(request), patient_id=patient_id, action=action, path=request.path[:300],
        detail=detail, address=client_address(request)[:64], outcome=outcome,
    )


def audit_failed_login(request, username: str, via: str, *, locked: bool = False) -> None:
    """A failed (or locked-out) sign-in: the account it aimed at when it exists (as the
    actor), else a digest of the name tried; never the password."""
    name = unicodedata.normalize("NFKC", username).strip().casefold()
    user = get_user_model().objects.filter(username__iexact=name[:150]).first() if name else None
    detail: dict = {"via": via}
    if user is None:
        detail["username_sha256"] = hashlib.sha256(name.encode()).hexdigest()[:16]
    audit(request, None, "login_locked" if locked else "login_failed", outcome=AuditEvent.FAILED,
          actor=user, **detail)


# --------------------------------------------------------------------------
# Object-level checks used by the API views and the dashboard pages.
#
# A patient that a user may not read is answered 404 (its existence is not revealed);
# a patient the user may read but not act on in that way (a clinician adding a device,
# a patient working the alert queue) is answered 403.

def clinician_of(user):
    """The user's Clinician row, or None (patients, devices, anonymous)."""
    if not user or not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        return None
    try:
        return user.clinician
    except ObjectDoesNotExist:
        return None


def patient_of(user) -> Patient | None:
    if not user or not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        return None
    try:
        return user.patient
    except ObjectDoesNotExist:
        return None


def readable_patient(user, patient_id: int) -> Patient | None:
    return readable_patients(user).filter(pk=patient_id).first()


def team_can_read(team_id: int, patient_id: int) -> bool:
    """True when the team is assigned the patient and holds an active consent."""
    return Patient.objects.filter(
        pk=patient_id, assignment__team_id=team_id, consents__team_id=team_id,
        consents__revoked_at__isnull=True,
    ).exists()


def teams_with_access(patient_id: int) -> QuerySet[CareTeam]:
    """Care teams assigned the patient that hold an active consent (by name)."""
    return (CareTeam.objects.filter(assignment__patient_id=patient_id, consents__patient_id=patient_id,
                                    consents__revoked_at__isnull=True)
            .distinct().order_by("name"))


def clinicians_with_access(patient_id: int) -> QuerySet[Clinician]:
    """Clinicians of the teams that may read the patient (by name)."""
    return (Clinician.objects.filter(teams__in=teams_with_access(patient_id))
            .distinct().order_by("display_name"))


def audit_many(request, patient_ids, action: str, **detail) -> None:
    """One audit event per patient whose data a list response showed."""
    user, address = _actor(request), client_address(request)[:64]
    ids = sorted(set(patient_ids))
    AuditEvent.objects.bulk_create(
        AuditEvent(actor=user, patient_id=pid, action=action, path=request.path[:300], detail=detail,
                   address=address)
        for pid in ids
    )
