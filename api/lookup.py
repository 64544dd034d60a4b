"""The one way a view finds what it serves and checks who may have it.

A patient (or alert) the user may not read is answered 404, its existence not
revealed; one the user may read but not act on in that way is answered 403. The API
views and the dashboard pages both call these (the dashboard turns the DRF errors into
Django's 404 and 403).
"""

from __future__ import annotations

from rest_framework import exceptions

from alerts.models import Alert
from alerts.queries import readable_alerts
from care.access import clinician_of, readable_patient
from care.models import Clinician, Patient


def require_clinician(request) -> Clinician:
    clinician = clinician_of(request.user)
    if clinician is None:
        raise exceptions.PermissionDenied("only clinicians work the alert queue")
    return clinician


def patient_or_404(request, patient_id: int, *, self_only: bool = False,
                   clinician_only: bool = False) -> Patient:
    """The patient if this user may read it; 404 if not; 403 if readable but the action
    belongs to the patient alone (``self_only``) or to the care team (``clinician_only``)."""
    patient = readable_patient(request.user, patient_id)
    if patient is None:
        raise exceptions.NotFound("no such patient, or no access to it")
    is_self = patient.user_id is not None and patient.user_id == request.user.pk
    if self_only and not is_self:
        raise exceptions.PermissionDenied("only the patient may do this")
    if clinician_only and clinician_of(request.user) is None:
        raise exceptions.PermissionDenied("only a clinician of the patient's care team may do this")
    return patient


def alert_or_404(request, alert_id: int) -> Alert:
    """An alert of a patient this clinician may read; 403 for anyone not a clinician."""
    require_clinician(request)
    alert = readable_alerts(request.user).filter(pk=alert_id).first()
    if alert is None:
        raise exceptions.NotFound("no such alert, or no access to it")
    return alert
