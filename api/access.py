"""Who may read a patient's data. Every view that serves health data asks here."""

from __future__ import annotations

from django.db.models import F, Q, QuerySet

from api.models import AuditEvent, Patient


def readable_patients(user) -> QuerySet[Patient]:
    """Patients this user may read: themself, or (clinicians) patients assigned to one of
    their teams who have an active consent for that same team."""
    if not user or not user.is_authenticated:
        return Patient.objects.none()
    clinician = getattr(user, "clinician", None)
    q = Q(user=user)
    if clinician is not None:
        q |= Q(
            assignment__team__teammembership__clinician=clinician,
            consents__team=F("assignment__team"),
            consents__revoked_at__isnull=True,
        )
    return Patient.objects.filter(q).distinct()


def can_read(user, patient_id: int) -> bool:
    return readable_patients(user).filter(pk=patient_id).exists()


def audit(request, patient_id: int | None, action: str, **detail) -> None:
    user = request.user if request.user and request.user.is_authenticated else None
    AuditEvent.objects.create(
        actor=user, patient_id=patient_id, action=action, path=request.path[:300], detail=detail
    )
