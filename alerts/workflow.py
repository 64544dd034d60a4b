"""The care team's alert workflow as plain functions over an alert and an actor.

acknowledge, snooze (at most ``MAX_SNOOZE`` ahead) and undo a snooze, escalate (to a clinician or a team
that may read the patient, checked through ``care.access``), resolve (a reason is
required) and add a note. Each checks that the actor is a clinician who may read the
alert's patient, locks the alert row for the change, records the step in
``AlertAction`` (the queue's history) and raises a ``WorkflowError`` that names the
field and the reason when it cannot act. The API and the dashboard only translate
requests into these calls, and these errors into their answers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from alerts import feedback, parameters, states
from alerts.errors import AlreadyResolved, InvalidInput, NotAllowed, WorkflowError
from alerts.models import Alert, AlertAction, AlertNote, DetectorThreshold
from care.access import can_read, clinician_of, team_can_read
from care.models import CareTeam, Clinician, Patient

MAX_SNOOZE = timedelta(days=30)
REASON_MAX = 300
RESOLVE_REASON_MIN = 3
NOTE_MAX = 2000

__all__ = ["AlreadyResolved", "InvalidInput", "NotAllowed", "WorkflowError", "acknowledge",
           "acknowledge_many", "add_note", "clear_thresholds", "escalate", "resolve",
           "revert_threshold_change", "set_thresholds", "snooze", "unsnooze"]


def _require_clinician(actor, patient_id: int) -> Clinician:
    clinician = clinician_of(actor)
    if clinician is None:
        raise NotAllowed("(request)", "only clinicians work the alert queue")
    if not can_read(actor, patient_id):
        raise NotAllowed("(request)", "no access to this alert's patient")
    return clinician


def _reason(text: str, *, required: bool = False) -> str:
    text = (text or "").strip()
    if len(text) > REASON_MAX:
        raise InvalidInput("reason", f"at most {REASON_MAX} characters")
    if required and len(text) < RESOLVE_REASON_MIN:
        raise InvalidInput("reason", f"say why, in {RESOLVE_REASON_MIN} to {REASON_MAX} characters")
    return text


def _act(alert: Alert, actor, action: str, to_status: str, **fields) -> AlertAction:
    """Lock the alert, apply one step, record it; the caller's instance is updated too."""
    with transaction.atomic():
        row = Alert.objects.select_for_update().get(pk=alert.pk)
        if row.status == states.RESOLVED:
            raise AlreadyResolved("(request)", "this alert is already resolved")
        record = AlertAction.objects.create(alert=row, actor=actor, action=action,
                                            from_status=row.status, to_status=to_status, **fields)
        row.status = to_status
        row.updated_at = timezone.now()
        row.snoozed_until = fields.get("snoozed_until")
        if action == AlertAction.RESOLVE:
            row.resolution_reason = fields["reason"]
            row.verdict = fields.get("verdict", "")
        if action == AlertAction.ACKNOWLEDGE and row.assigned_to_id is None:
            row.assigned_to = actor
        if action == AlertAction.ESCALATE:
            target = fields.get("escalated_to_clinician")
            row.assigned_to = target.user if target is not None else None
        row.save(update_fields=["status", "updated_at", "snoozed_until", "resolution_reason",
                                "assigned_to", "verdict"])
    for name in ("status", "updated_at", "snoozed_until", "resolution_reason", "assigned_to_id",
                 "event_seq", "severity", "evidence", "verdict"):
        setattr(alert, name, getattr(row, name))
    return record


def acknowledge(alert: Alert, actor, reason: str = "") -> AlertAction:
    """Someone is looking at it; the alert is assigned to them if it was nobody's."""
    _require_clinician(actor, alert.patient_id)
    return _act(alert, actor, AlertAction.ACKNOWLEDGE, states.ACKNOWLEDGED, reason=_reason(reason))


def acknowledge_many(alert_ids: list[int], actor) -> tuple[list[int], dict[int, str]]:
    """Acknowledge several alerts (the queue's bulk action): each one as ``acknowledge``.
    Returns the ids acknowledged and, by id, why the others were not."""
    done, refused = [], {}
    for alert in Alert.objects.filter(pk__in=list(alert_ids)[:200]).order_by("pk"):
        if alert.status == states.ACKNOWLEDGED:
            continue
        try:
            acknowledge(alert, actor)
            done.append(alert.pk)
        except WorkflowError as exc:
            refused[alert.pk] = exc.reason
    return done, refused


def snooze(alert: Alert, actor, until: datetime, reason: str = "",
           now: datetime | None = None) -> AlertAction:
    """Out of the queue until ``until`` (in the future, at most ``MAX_SNOOZE`` ahead)."""
    _require_clinician(actor, alert.patient_id)
    now = now or timezone.now()
    if until is None or until.tzinfo is None:
        raise InvalidInput("until", "a date-time with a time zone is required")
    if until <= now:
        raise InvalidInput("until", "must be in the future")
    if until - now > MAX_SNOOZE:
        raise InvalidInput("until", f"an alert can be snoozed for at most {MAX_SNOOZE.days} days")
    return _act(alert, actor, AlertAction.SNOOZE, states.SNOOZED, snoozed_until=until,
                reason=_reason(reason))


def unsnooze(alert: Alert, actor, reason: str = "") -> AlertAction:
    """Undo a snooze: the alert returns to the queue in the status it had before it was
    snoozed (open, acknowledged or escalated, with its assignee kept)."""
    _require_clinician(actor, alert.patient_id)
    if alert.status != states.SNOOZED:
        raise InvalidInput("(request)", "this alert is not snoozed")
    last = (AlertAction.objects.filter(alert_id=alert.pk, action=AlertAction.SNOOZE)
            .order_by("-at", "-pk").values_list("from_status", flat=True).first())
    back = last if last in (states.OPEN, states.ACKNOWLEDGED, states.ESCALATED) else states.OPEN
    return _act(alert, actor, AlertAction.UNSNOOZE, back, reason=_reason(reason))


def escalate(alert: Alert, actor, *, clinician_id: int | None = None, team_id: int | None = None,
             reason: str = "") -> AlertAction:
    """Hand the alert to another clinician, or a care team, who may read its patient."""
    _require_clinician(actor, alert.patient_id)
    if (clinician_id is None) == (team_id is None):
        raise InvalidInput("(request)", "name exactly one of clinician or team")
    clinician = team = None
    if clinician_id is not None:
        clinician = Clinician.objects.select_related("user").filter(pk=clinician_id).first()
        if clinician is None or not can_read(clinician.user, alert.patient_id):
            raise InvalidInput("clinician", "no such clinician with access to this patient")
    else:
        team = CareTeam.objects.filter(pk=team_id).first()
        if team is None or not team_can_read(team.pk, alert.patient_id):
            raise InvalidInput("team", "no such care team with access to this patient")
    return _act(alert, actor, AlertAction.ESCALATE, states.ESCALATED,
                escalated_to_clinician=clinician, escalated_to_team=team, reason=_reason(reason))


def escalated_to(alert: Alert) -> AlertAction | None:
    """The escalation the alert is under (its latest step, while it is escalated)."""
    if alert.status != states.ESCALATED:
        return None
    return (AlertAction.objects.filter(alert=alert, action=AlertAction.ESCALATE)
            .select_related("escalated_to_clinician", "escalated_to_team").order_by("-at", "-id").first())


def _may_resolve_escalated(alert: Alert, clinician: Clinician) -> None:
    """An escalated alert is the target's to close: the clinician it was handed to, or a
    member of the team it was handed to (not the one who escalated it)."""
    step = escalated_to(alert)
    if step is None:
        return
    if step.escalated_to_clinician_id is not None and step.escalated_to_clinician_id != clinician.pk:
        raise NotAllowed("(request)", f"escalated to {step.escalated_to_clinician.display_name}: "
                         "they resolve it")
    if step.escalated_to_team_id is not None and not clinician.teams.filter(pk=step.escalated_to_team_id).exists():
        raise NotAllowed("(request)", f"escalated to team {step.escalated_to_team.name}: "
                         "its members resolve it")


def resolve(alert: Alert, actor, reason: str, verdict: str = "") -> AlertAction:
    """Close the alert; the reason (3 to 300 characters) is required, the verdict
    (actionable, not actionable, unsure) is asked for. Not-actionable verdicts feed
    back into the patient's thresholds (``alerts.feedback``)."""
    clinician = _require_clinician(actor, alert.patient_id)
    verdict = (verdict or "").strip()
    if verdict and verdict not in states.VERDICTS:
        raise InvalidInput("verdict", f"must be one of {', '.join(states.VERDICTS)}")
    _may_resolve_escalated(alert, clinician)
    record = _act(alert, actor, AlertAction.RESOLVE, states.RESOLVED,
                  reason=_reason(reason, required=True), verdict=verdict)
    if verdict == states.NOT_ACTIONABLE:
        feedback.after_verdict(alert)
    return record


def add_note(alert: Alert, actor, text: str) -> AlertNote:
    """A clinician's note (1 to 2000 characters; allowed on resolved alerts too)."""
    _require_clinician(actor, alert.patient_id)
    text = (text or "").strip()
    if not text or len(text) > NOTE_MAX:
        raise InvalidInput("text", f"write 1 to {NOTE_MAX} characters")
    with transaction.atomic():
        note = AlertNote.objects.create(alert=alert, author=actor, text=text)
        Alert.objects.filter(pk=alert.pk).update(updated_at=note.at)
    alert.updated_at = note.at
    return note


def set_thresholds(patient: Patient, detector: str, params: dict, actor,
                   reason: str = "") -> DetectorThreshold:
    """Store a clinician's override of a detector's parameters for one patient, within
    each parameter's allowed range (``alerts.parameters``); the change is kept with
    before and after, who and why, in ``DetectorThreshold.history``.

    ``params`` must already pass the detectors' own check (``streams.detectors``
    ``validate_overrides``): the detectors live above this layer, so the caller runs it."""
    _require_clinician(actor, patient.pk)
    if errors := parameters.check(detector, params):
        name, why = next(iter(errors.items()))
        raise InvalidInput(f"params.{name}", why)
    with transaction.atomic():
        row = (DetectorThreshold.objects.select_for_update()
               .filter(patient=patient, detector=detector).first()
               or DetectorThreshold(patient=patient, detector=detector))
        row.params, row.updated_by, row.updated_at = params, actor, timezone.now()
        row._change_reason = _reason(reason)  # type: ignore[attr-defined]
        row._history_user = actor  # type: ignore[attr-defined]
        row.save()
    return row


def clear_thresholds(patient: Patient, detector: str, actor, reason: str = "") -> None:
    """Remove the override: the detector's defaults apply again (kept in the history)."""
    _require_clinician(actor, patient.pk)
    for row in DetectorThreshold.objects.filter(patient=patient, detector=detector[:48]):
        row._change_reason = _reason(reason)  # type: ignore[attr-defined]
        row._history_user = actor  # type: ignore[attr-defined]
        row.delete()


def revert_threshold_change(patient: Patient, history_id: int, actor, reason: str) -> None:
    """Undo one recorded change of a patient's thresholds (a clinician reversing the
    feedback loop, or a colleague): the parameters before it apply again."""
    _require_clinician(actor, patient.pk)
    change = DetectorThreshold.history.filter(pk=history_id, patient_id=patient.pk).first()
    if change is None:
        raise InvalidInput("change", "no such threshold change for this patient")
    why = _reason(reason, required=True)
    before = change.prev_record
    note = f"reverted the change of {change.history_date:%d %b %H:%M}: {why}"[:REASON_MAX]
    if before is None or before.history_type == "-":
        clear_thresholds(patient, change.detector, actor, note)
    else:
        set_thresholds(patient, change.detector, dict(before.params), actor, note)
