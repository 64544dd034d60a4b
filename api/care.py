"""Care-team API: the alert queue and its actions, a patient's timeline, and the
per-patient detector thresholds. Clinicians only; every alert belongs to a patient the
clinician may read (assigned to one of their teams, with an active consent)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, Value, When
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from api import params as params_mod
from api.access import (
    audit,
    audit_many,
    clinician_of,
    readable_alerts,
    readable_patients,
    team_can_read,
)
from api.models import AlertAction, AlertNote, CareTeam, Clinician, Consent, Device
from api.serializers import (
    DETECTOR_RE,
    AlertDetailSerializer,
    AlertNoteSerializer,
    AlertSerializer,
    EscalateSerializer,
    EscalationTargetsSerializer,
    ReasonSerializer,
    ResolveSerializer,
    SnoozeSerializer,
    ThresholdSerializer,
    ThresholdWriteSerializer,
)
from api.views import ERR, filter_status, patient_or_404
from coaching import context as coaching_context
from coaching.models import ContextReport, DetectorQuiet, Recommendation
from streams.models import Alert, DetectorThreshold

SEVERITY_RANK = Case(When(severity="red", then=Value(0)), When(severity="yellow", then=Value(1)),
                     default=Value(2), output_field=IntegerField())


def require_clinician(request) -> Clinician:
    clinician = clinician_of(request.user)
    if clinician is None:
        raise exceptions.PermissionDenied("only clinicians work the alert queue")
    return clinician


def quieted_q() -> Exists:
    """The alert's detector was quieted by the patient when the alert's window began."""
    return Exists(DetectorQuiet.objects.filter(
        patient_id=OuterRef("patient_id"), detector=OuterRef("detector"),
        starts_at__lte=OuterRef("window_start"), until__gt=OuterRef("window_start")))


def _when(request, name: str) -> datetime | None:
    return params_mod.instant(request.query_params.get(name), name)


QUEUE_PARAMS = [
    OpenApiParameter("status", str, enum=["active", "open", "acknowledged", "snoozed", "escalated",
                                          "resolved", "all"],
                     description="active (default): open, acknowledged, escalated, or snoozed until a past time"),
    OpenApiParameter("severity", str, enum=["red", "yellow", "info"]),
    OpenApiParameter("detector", str),
    OpenApiParameter("patient", int),
    OpenApiParameter("team", int, description="only patients of this team"),
    OpenApiParameter("assigned", str, enum=["me", "anyone", "nobody"]),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="opened at or after"),
    OpenApiParameter("updated_since", OpenApiTypes.DATETIME,
                     description="changed at or after (for polling clients)"),
    OpenApiParameter("include_quieted", bool,
                     description="also show non-red alerts from detectors the patient quieted"),
]


class AlertQueueView(generics.ListAPIView):
    """The care team's alert queue: red first, then yellow, newest first."""

    serializer_class = AlertSerializer

    @extend_schema(parameters=QUEUE_PARAMS, responses={200: AlertSerializer(many=True), **ERR})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        require_clinician(self.request)
        return queue_queryset(self.request.user, self.request.query_params)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        audit_many(request, [a.patient_id for a in page], "read_alert_queue")
        contexts = coaching_context.contexts_for(page)
        names = assignee_names(a.assigned_to_id for a in page)
        return self.get_paginated_response([alert_row(a, contexts, names) for a in page])


def _iso(value) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def assignee_names(user_ids) -> dict[int, str]:
    """Display names of the users alerts are assigned to (clinician name, else username)."""
    from django.contrib.auth import get_user_model

    ids = {i for i in user_ids if i is not None}
    if not ids:
        return {}
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    names.update(Clinician.objects.filter(user_id__in=ids).values_list("user_id", "display_name"))
    return names


def alert_row(a: Alert, contexts: dict, names: dict[int, str]) -> dict:
    """What AlertSerializer gives, built directly: the queue is the hot path (50 rows a
    poll), and DRF's field machinery cost more than the database here."""
    assigned = names.get(a.assigned_to_id) if a.assigned_to_id is not None else None
    return {
        "id": a.pk, "patient": a.patient_id, "patient_name": a.patient.display_name,
        "detector": a.detector, "severity": a.severity, "status": a.status,
        "window_start": _iso(a.window_start), "window_end": _iso(a.window_end),
        "evidence": a.evidence, "signal_closed": a.signal_closed,
        "opened_at": _iso(a.opened_at), "updated_at": _iso(a.updated_at),
        "snoozed_until": _iso(a.snoozed_until), "assigned_to": assigned,
        "resolution_reason": a.resolution_reason, "context": contexts.get(a.pk, []),
        "quieted": bool(getattr(a, "is_quieted", False)),
    }


def queue_queryset(user, query):
    """The queue for a clinician (shared by the API and the dashboard)."""
    qs = readable_alerts(user).select_related("patient")
    qs = filter_status(qs, query.get("status", "active"))
    if severity := query.get("severity"):
        if severity not in ("red", "yellow", "info"):
            raise exceptions.ValidationError({"severity": "must be red, yellow or info"})
        qs = qs.filter(severity=severity)
    if detector := query.get("detector"):
        qs = qs.filter(detector=detector[:48])
    for name in ("patient", "team"):
        value = params_mod.integer(query.get(name), name, 0, 0, 2**62)
        if value:
            qs = qs.filter(patient_id=value) if name == "patient" else qs.filter(
                patient__assignment__team_id=value)
    assigned = query.get("assigned", "anyone")
    if assigned == "me":
        qs = qs.filter(assigned_to=user)
    elif assigned == "nobody":
        qs = qs.filter(assigned_to__isnull=True)
    elif assigned != "anyone":
        raise exceptions.ValidationError({"assigned": "must be me, anyone or nobody"})
    for name, field in (("since", "opened_at__gte"), ("updated_since", "updated_at__gte")):
        value = params_mod.instant(query.get(name), name)
        if value is not None:
            qs = qs.filter(**{field: value})
    qs = qs.annotate(is_quieted=quieted_q())
    include_quieted = params_mod.boolean(query.get("include_quieted"), "include_quieted")
    if not include_quieted:
        qs = qs.filter(Q(is_quieted=False) | Q(severity="red"))
    return qs.annotate(rank=SEVERITY_RANK).order_by("rank", "-opened_at", "-id")


def alert_or_404(request, alert_id: int, *, lock: bool = False) -> Alert:
    require_clinician(request)
    qs = readable_alerts(request.user)
    if lock:
        qs = qs.select_for_update(of=("self",))
    alert = qs.filter(pk=alert_id).first()
    if alert is None:
        raise exceptions.NotFound("no such alert, or no access to it")
    return alert


def _detail(request, alert: Alert) -> dict:
    alert = (Alert.objects.select_related("patient", "assigned_to__clinician")
             .prefetch_related("actions__actor__clinician", "actions__escalated_to_clinician",
                               "actions__escalated_to_team", "notes__author__clinician")
             .annotate(is_quieted=quieted_q()).get(pk=alert.pk))
    ctx = {"request": request, "contexts": coaching_context.contexts_for([alert])}
    return AlertDetailSerializer(alert, context=ctx).data


class AlertDetailView(APIView):
    @extend_schema(responses={200: AlertDetailSerializer, **ERR},
                   description="One alert with its evidence, history of actions, notes and "
                               "the patient's reported context.")
    def get(self, request, alert_id: int):
        alert = alert_or_404(request, alert_id)
        audit(request, alert.patient_id, "read_alert", alert=alert.pk)
        return Response(_detail(request, alert))


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "conflict"


def act(request, alert: Alert, action: str, to_status: str, **fields) -> AlertAction:
    """Apply an action to a locked alert and record it. Resolved alerts take no actions."""
    if alert.status == Alert.RESOLVED:
        raise Conflict("this alert is already resolved")
    record = AlertAction.objects.create(alert=alert, actor=request.user, action=action,
                                        from_status=alert.status, to_status=to_status, **fields)
    alert.status = to_status
    alert.updated_at = timezone.now()
    update = ["status", "updated_at"]
    if action == AlertAction.SNOOZE:
        alert.snoozed_until = fields["snoozed_until"]
        update.append("snoozed_until")
    elif alert.snoozed_until is not None:
        alert.snoozed_until = None
        update.append("snoozed_until")
    if action == AlertAction.RESOLVE:
        alert.resolution_reason = fields["reason"]
        update.append("resolution_reason")
    if action == AlertAction.ACKNOWLEDGE and alert.assigned_to_id is None:
        alert.assigned_to = request.user
        update.append("assigned_to")
    if action == AlertAction.ESCALATE:
        target = fields.get("escalated_to_clinician")
        alert.assigned_to = target.user if target is not None else None
        update.append("assigned_to")
    alert.save(update_fields=update)
    return record


class _ActionView(APIView):
    action_name = ""
    request_serializer = ReasonSerializer

    def perform(self, request, alert: Alert, data: dict) -> None:
        raise NotImplementedError

    def post(self, request, alert_id: int):
        body = self.request_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            alert = alert_or_404(request, alert_id, lock=True)
            self.perform(request, alert, body.validated_data)
        audit(request, alert.patient_id, f"alert_{self.action_name}", alert=alert.pk)
        return Response(_detail(request, alert))


def _action_schema(name: str, serializer, text: str):
    return extend_schema(request=serializer, responses={200: AlertDetailSerializer, **ERR},
                         description=text, operation_id=f"alerts_{name}")


class AcknowledgeView(_ActionView):
    action_name = "acknowledge"

    @_action_schema("acknowledge", ReasonSerializer, "Acknowledge: someone is looking at it.")
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)

    def perform(self, request, alert, data):
        act(request, alert, AlertAction.ACKNOWLEDGE, Alert.ACKNOWLEDGED, reason=data["reason"])


class SnoozeView(_ActionView):
    action_name = "snooze"
    request_serializer = SnoozeSerializer

    @_action_schema("snooze", SnoozeSerializer,
                    "Snooze until a time (at most 30 days); it comes back to the queue then.")
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)

    def perform(self, request, alert, data):
        act(request, alert, AlertAction.SNOOZE, Alert.SNOOZED, snoozed_until=data["until"],
            reason=data["reason"])


class EscalateView(_ActionView):
    action_name = "escalate"
    request_serializer = EscalateSerializer

    @_action_schema("escalate", EscalateSerializer,
                    "Escalate to another clinician or a care team that can see this patient.")
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)

    def perform(self, request, alert, data):
        clinician = team = None
        if data["clinician"] is not None:
            clinician = Clinician.objects.select_related("user").filter(pk=data["clinician"]).first()
            if clinician is None or not readable_patients(clinician.user).filter(pk=alert.patient_id).exists():
                raise exceptions.ValidationError({"clinician": "no such clinician with access to this patient"})
        else:
            team = CareTeam.objects.filter(pk=data["team"]).first()
            if team is None or not team_can_read(team.pk, alert.patient_id):
                raise exceptions.ValidationError({"team": "no such care team with access to this patient"})
        act(request, alert, AlertAction.ESCALATE, Alert.ESCALATED, escalated_to_clinician=clinician,
            escalated_to_team=team, reason=data["reason"])


class ResolveView(_ActionView):
    action_name = "resolve"
    request_serializer = ResolveSerializer

    @_action_schema("resolve", ResolveSerializer, "Resolve with a reason (3 to 300 characters).")
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)

    def perform(self, request, alert, data):
        act(request, alert, AlertAction.RESOLVE, Alert.RESOLVED, reason=data["reason"])


class NoteView(APIView):
    @extend_schema(request=AlertNoteSerializer, responses={201: AlertNoteSerializer, **ERR},
                   description="Add a note to an alert (also allowed once resolved).")
    def post(self, request, alert_id: int):
        body = AlertNoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alert = alert_or_404(request, alert_id)
        note = AlertNote.objects.create(alert=alert, author=request.user, text=body.validated_data["text"])
        Alert.objects.filter(pk=alert.pk).update(updated_at=timezone.now())
        return Response(AlertNoteSerializer(note).data, status=status.HTTP_201_CREATED)


class EscalationTargetsView(APIView):
    @extend_schema(responses={200: EscalationTargetsSerializer, **ERR},
                   description="Clinicians and care teams this alert may be escalated to: those "
                               "who can see its patient.")
    def get(self, request, alert_id: int):
        alert = alert_or_404(request, alert_id)
        audit(request, alert.patient_id, "read_escalation_targets", alert=alert.pk)
        teams = CareTeam.objects.filter(
            assignment__patient_id=alert.patient_id, consents__patient_id=alert.patient_id,
            consents__revoked_at__isnull=True).distinct().order_by("name")
        me = clinician_of(request.user)
        clinicians = (Clinician.objects.filter(teams__in=teams).exclude(pk=me.pk)
                      .distinct().order_by("display_name"))
        return Response({
            "clinicians": [{"id": c.pk, "name": c.display_name} for c in clinicians],
            "teams": [{"id": t.pk, "name": t.name} for t in teams],
        })


# ---------------------------------------------------------------- timeline

class TimelineView(APIView):
    @extend_schema(parameters=[
        OpenApiParameter("since", OpenApiTypes.DATETIME),
        OpenApiParameter("until", OpenApiTypes.DATETIME),
        OpenApiParameter("limit", int, description="1 to 500 (default 100)"),
    ], responses={200: OpenApiTypes.OBJECT, **ERR},
        description="What happened to a patient, newest first: alerts, actions on them, notes, "
                    "advice given, context reported, devices, consents.")
    def get(self, request, patient_id: int):
        require_clinician(request)
        patient = patient_or_404(request, patient_id, clinician_only=True)
        since, until = _when(request, "since"), _when(request, "until")
        limit = params_mod.integer(request.query_params.get("limit"), "limit", 100, 1, 500)
        audit(request, patient.pk, "read_timeline")
        return Response({"patient": patient.pk, "events": timeline(patient.pk, since, until, limit)})


def _between(qs, field: str, since, until):
    if since:
        qs = qs.filter(**{f"{field}__gte": since})
    if until:
        qs = qs.filter(**{f"{field}__lt": until})
    return qs.order_by(f"-{field}")


def timeline(patient_id: int, since=None, until=None, limit: int = 100) -> list[dict]:
    events: list[dict] = []
    for a in _between(Alert.objects.filter(patient_id=patient_id), "opened_at", since, until)[:limit]:
        events.append({"at": a.opened_at, "kind": "alert", "id": a.pk, "detector": a.detector,
                       "severity": a.severity, "status": a.status})
    for x in _between(AlertAction.objects.filter(alert__patient_id=patient_id)
                      .select_related("actor__clinician", "alert"), "at", since, until)[:limit]:
        who = getattr(x.actor, "clinician", None)
        events.append({"at": x.at, "kind": f"alert_{x.action}", "alert": x.alert_id,
                       "detector": x.alert.detector, "by": who.display_name if who else None,
                       "to_status": x.to_status, "reason": x.reason})
    for n in _between(AlertNote.objects.filter(alert__patient_id=patient_id)
                      .select_related("author__clinician"), "at", since, until)[:limit]:
        who = getattr(n.author, "clinician", None)
        events.append({"at": n.at, "kind": "note", "alert": n.alert_id, "text": n.text,
                       "by": who.display_name if who else None})
    for r in _between(Recommendation.objects.filter(patient_id=patient_id), "created_at", since, until)[:limit]:
        events.append({"at": r.created_at, "kind": "advice", "id": r.pk, "rule": r.rule,
                       "category": r.category, "priority": r.priority, "title": r.title,
                       "status": r.status})
    for c in _between(ContextReport.objects.filter(patient_id=patient_id), "created_at", since, until)[:limit]:
        events.append({"at": c.created_at, "kind": "context", "id": c.pk, "tags": c.tags,
                       "starts_at": c.starts_at, "ends_at": c.ends_at})
    for d in _between(Device.objects.filter(patient_id=patient_id), "created_at", since, until)[:limit]:
        events.append({"at": d.created_at, "kind": "device_added", "id": d.pk, "name": d.name})
        if d.revoked_at:
            events.append({"at": d.revoked_at, "kind": "device_revoked", "id": d.pk, "name": d.name})
    for c in _between(Consent.objects.filter(patient_id=patient_id).select_related("team"),
                      "granted_at", since, until)[:limit]:
        events.append({"at": c.granted_at, "kind": "consent_granted", "team": c.team.name})
        if c.revoked_at:
            events.append({"at": c.revoked_at, "kind": "consent_revoked", "team": c.team.name})
    events.sort(key=lambda e: e["at"], reverse=True)
    return events[:limit]


# -------------------------------------------------------------- thresholds

def check_overrides(detector: str, params: dict) -> dict:
    """The streams detectors' own check of a clinician's override (known detector, tunable
    parameter, numeric value), so the API refuses what the detectors would reject."""
    try:
        from streams.detectors.suite import validate_overrides
    except ImportError:  # the detectors are not installed in this process
        return params
    try:
        return validate_overrides(detector, params)
    except ValueError as exc:
        raise exceptions.ValidationError({"params": str(exc)}) from None


def tunable_parameters() -> dict[str, tuple[str, ...]]:
    try:
        from streams.detectors.suite import TUNABLE
    except ImportError:
        return {}
    return dict(TUNABLE)


class ThresholdListView(APIView):
    @extend_schema(responses={200: ThresholdSerializer(many=True), **ERR},
                   description="The patient's detector overrides (the detectors read them).")
    def get(self, request, patient_id: int):
        require_clinician(request)
        patient = patient_or_404(request, patient_id, clinician_only=True)
        audit(request, patient.pk, "read_thresholds")
        rows = DetectorThreshold.objects.filter(patient=patient).select_related("updated_by").order_by("detector")
        return Response(ThresholdSerializer(rows, many=True).data)


class ThresholdDetailView(APIView):
    @extend_schema(request=ThresholdWriteSerializer, responses={200: ThresholdSerializer, **ERR},
                   description="Set a detector's parameters for this patient.")
    def put(self, request, patient_id: int, detector: str):
        require_clinician(request)
        patient = patient_or_404(request, patient_id, clinician_only=True)
        if not DETECTOR_RE.match(detector):
            raise exceptions.ValidationError({"detector": "is not a detector name"})
        body = ThresholdWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        params = check_overrides(detector, body.validated_data["params"])
        row, _ = DetectorThreshold.objects.update_or_create(
            patient=patient, detector=detector,
            defaults={"params": params, "updated_by": request.user,
                      "updated_at": timezone.now()})
        return Response(ThresholdSerializer(row).data)

    @extend_schema(request=None, responses={204: None, **ERR},
                   description="Remove the override: the detector's defaults apply again.")
    def delete(self, request, patient_id: int, detector: str):
        require_clinician(request)
        patient = patient_or_404(request, patient_id, clinician_only=True)
        DetectorThreshold.objects.filter(patient=patient, detector=detector[:48]).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
