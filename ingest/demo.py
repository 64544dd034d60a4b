"""Demo cohort registration for the simulator and the embedded stack."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from care.models import Device, Patient

SIM_NAME = "Simulated patient {:02d}"
SIM_USER = "patient{:02d}"
SIM_PASSWORD = "healthstream-demo-{:02d}"
SIM_DEVICE = "simulator watch"


@transaction.atomic
def register_cohort(n_patients: int) -> list[tuple[int, Patient, str]]:
    """Create (or find) the simulated patients with a login each, and give every one a
    fresh simulator device token (the previous simulator token is revoked).

    Returns ``(simulated index, patient, raw device token)``.
    """
    User = get_user_model()
    out = []
    for i in range(1, n_patients + 1):
        user, created = User.objects.get_or_create(username=SIM_USER.format(i))
        if created:
            user.set_password(SIM_PASSWORD.format(i))
            user.save()
        patient, _ = Patient.objects.get_or_create(
            display_name=SIM_NAME.format(i), defaults={"user": user, "timezone": "UTC"}
        )
        if patient.user_id is None:
            patient.user = user
            patient.save(update_fields=["user"])
        for old in Device.objects.filter(patient=patient, name=SIM_DEVICE, revoked_at__isnull=True):
            old.revoke()
        _, token = Device.issue(patient, SIM_DEVICE)
        out.append((i, patient, token))
    return out
