"""Care-team API: the alert queue and its actions, a patient's timeline, and the
per-patient detector thresholds. Clinicians only; every alert belongs to a patient the
clinician may read (assigned to one of their teams, with an active consent)."""

from __future__ import annotations

from datetime import datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts import presentation, quality, queries, states, workflow
from alerts.models import Alert, AlertAction, AlertNote, DetectorThreshold
from api import query
from api.errors import ERR
from api.lookup import alert_or_404, patient_or_404, require_clinician
from api.serializers import (
    DETECTOR_RE,
    AlertDetailSerializer,
    AlertNoteSerializer,
    AlertSerializer,
    EscalateSerializer,
    EscalationTargetsSerializer,
    QualitySerializer,
    ReasonSerializer,
    ResolveSerializer,
    SnoozeSerializer,
    ThresholdSerializer,
    ThresholdWriteSerializer,
)
from care.access import audit, audit_many, clinician_of, clinicians_with_access, teams_with_access
from care.models import Consent, Device
from coaching import context as coaching_context
from coaching.models import ContextReport, Recommendation
from streams.detectors.suite import TUNABLE, validate_overrides


def _when(request, name: str) -> datetime | None:
    return query.instant(request.query_params.get(name), name)


QUEUE_PARAMS = [
    OpenApiParameter("status", str, enum=list(states.STATUS_FILTERS),
                     description="active (default): open, acknowledged, escalated, or snoozed until a past time"),
    OpenApiParameter("severity", str, enum=list(reversed(states.SEVERITIES))),
    OpenApiParameter("detector", str),
    OpenApiParameter("patient", int),
    OpenApiParameter("team", int, description="only patients of this team"),
    OpenApiParameter("assigned", str, enum=list(queries.ASSIGNED)),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="opened at or after"),
    OpenApiParameter("updated_since", OpenApiTypes.DATETIME,
                     description="changed at or after (for polling clients)"),
    OpenApiParameter("include_quieted", bool,
                     description="also show non-red alerts from detectors the patient quieted"),
    OpenApiParameter("q", str, description="patients whose name contains this (at most 60 characters)"),
    OpenApiParameter("sort", str, enum=list(queries.SORTS),
                     description="urgent (default): red first, then yellow, newest raised first; "
                                 "oldest/newest: by the window's start; patient: by name"),
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
        names = queries.assignee_names(a.assigned_to_id for a in page)
        return self.get_paginated_response([alert_row(a, contexts, names) for a in page])


def _iso(value) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def alert_row(a: Alert, contexts: dict, names: dict[int, str]) -> dict:
    """What AlertSerializer gives, built directly: the queue is the hot path (50 rows a
    poll), and DRF's field machinery cost more than the database here."""
    assigned = names.get(a.assigned_to_id) if a.assigned_to_id is not None else None
    return {
        "id": a.pk, "patient": a.patient_id, "patient_name": a.patient.display_name,
        "title": presentation.title(a.detector, a.evidence), "detector": a.detector, "severity": a.severity, "status": a.status,
        "window_start": _iso(a.window_start), "window_end": _iso(a.window_end),
        "evidence": a.evidence, "signal_closed": a.signal_closed,
        "opened_at": _iso(a.opened_at), "updated_at": _iso(a.updated_at),
        "snoozed_until": _iso(a.snoozed_until), "assigned_to": assigned,
        "resolution_reason": a.resolution_reason, "context": contexts.get(a.pk, []),
        "quieted": bool(getattr(a, "is_quieted", False)), "verdict": a.verdict,
    }


def queue_filter(params) -> queries.QueueFilter:
    """The queue's query parameters, parsed and bounded (400 naming the parameter)."""
    return queries.QueueFilter(
        status=params.get("status", states.ACTIVE),
        severity=params.get("severity") or None,
        detector=params.get("detector") or None,
        patient=query.integer(params.get("patient"), "patient", 0, 0, 2**62) or None,
        team=query.integer(params.get("team"), "team", 0, 0, 2**62) or None,
        assigned=params.get("assigned", "anyone"),
        since=query.instant(params.get("since"), "since"),
        updated_since=query.instant(params.get("updated_since"), "updated_since"),
        include_quieted=query.boolean(params.get("include_quieted"), "include_quieted"),
        search=params.get("q", "") or "",
        sort=params.get("sort") or "urgent",
    )


def queue_queryset(user, params):
    """The queue for a clinician (shared by the API and the dashboard)."""
    return queries.queue(user, queue_filter(params))


def _detail(request, alert: Alert) -> dict:
    alert = (Alert.objects.select_related("patient", "assigned_to__clinician")
             .prefetch_related("actions__actor__clinician", "actions__escalated_to_clinician",
                               "actions__escalated_to_team", "notes__author__clinician")
             .annotate(is_quieted=queries.quieted_q()).get(pk=alert.pk))
    ctx = {"request": request, "contexts": coaching_context.contexts_for([alert])}
    return AlertDetailSerializer(alert, context=ctx).data


class AlertQualityView(APIView):
    @extend_schema(responses={200: QualitySerializer, **ERR},
                   description="Alert quality for each of the clinician's care teams and each "
                               "detector, over the last 30 and 90 days: alert-days per "
                               "patient-month, and the share of alerts resolved as not actionable.")
    def get(self, request):
        clinician = require_clinician(request)
        return Response(QualitySerializer(quality.quality(clinician.teams.order_by("name"))).data)


class AlertDetailView(APIView):
    @extend_schema(responses={200: AlertDetailSerializer, **ERR},
                   description="One alert with its evidence, history of actions, notes and "
                               "the patient's reported context.")
    def get(self, request, alert_id: int):
        alert = alert_or_404(request, alert_id)
        audit(request, alert.patient_id, "read_alert", alert=alert.pk)
        return Response(_detail(request, alert))


class _ActionView(APIView):
    """Parse the body, call the workflow, answer the alert; the workflow's errors become
    400, 403 or 409 in ``api.errors``."""

    action_name = ""
    request_serializer: type = ReasonSerializer

    def perform(self, request, alert: Alert, data: dict) -> None:
        raise NotImplementedError

    def post(self, request, alert_id: int):
        body = self.request_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        alert = alert_or_404(request, alert_id)
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
        workflow.acknowledge(alert, request.user, data["reason"])


class SnoozeView(_ActionView):
    action_name = "snooze"
    request_serializer = SnoozeSerializer

    @_action_schema("snooze", SnoozeSerializer,
                    f"Snooze until a time (at most {workflow.MAX_SNOOZE.days} days); it comes "
                    "back to the queue then.")
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)

    def perform(self, request, alert, data):
        workflow.snooze(alert, request.user, data["until"], data["reason"])


class UnsnoozeView(_ActionView):
    action_name = "unsnooze"

    @_action_schema("unsnooze", ReasonSerializer,
                    "Undo a snooze: the alert returns to the queue in the status it had before.")
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)

    def perform(self, request, alert, data):
        workflow.unsnooze(alert, request.user, data["reason"])


class EscalateView(_ActionView):
    action_name = "escalate"
    request_serializer = EscalateSerializer

    @_action_schema("escalate", EscalateSerializer,
                    "Escalate to another clinician or a care team that can see this patient.")
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)

    def perform(self, request, alert, data):
        workflow.escalate(alert, request.user, clinician_id=data["clinician"], team_id=data["team"],
                          reason=data["reason"])


class ResolveView(_ActionView):
    action_name = "resolve"
    request_serializer = ResolveSerializer

    @_action_schema("resolve", ResolveSerializer, "Resolve with a reason (3 to 300 characters).")
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)

    def perform(self, request, alert, data):
        workflow.resolve(alert, request.user, data["reason"], data.get("verdict", ""))


class NoteView(APIView):
    @extend_schema(request=AlertNoteSerializer, responses={201: AlertNoteSerializer, **ERR},
                   description="Add a note to an alert (also allowed once resolved).")
    def post(self, request, alert_id: int):
        body = AlertNoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alert = alert_or_404(request, alert_id)
        note = workflow.add_note(alert, request.user, body.validated_data["text"])
        audit(request, alert.patient_id, "alert_note", alert=alert.pk, note=note.pk)
        return Response(AlertNoteSerializer(note).data, status=status.HTTP_201_CREATED)


class EscalationTargetsView(APIView):
    @extend_schema(responses={200: EscalationTargetsSerializer, **ERR},
                   description="Clinicians and care teams this alert may be escalated to: those "
                               "who can see its patient.")
    def get(self, request, alert_id: int):
        alert = alert_or_404(request, alert_id)
        audit(request, alert.patient_id, "read_escalation_targets", alert=alert.pk)
        teams = teams_with_access(alert.patient_id)
        clinicians = clinicians_with_access(alert.patient_id).exclude(pk=clinician_of(request.user).pk)
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
        limit = query.integer(request.query_params.get("limit"), "limit", 100, 1, 500)
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
                      .select_related("actor__clinician", "alert", "escalated_to_clinician",
                                      "escalated_to_team"), "at", since, until)[:limit]:
        who = getattr(x.actor, "clinician", None)
        to = (x.escalated_to_clinician.display_name if x.escalated_to_clinician
              else f"team {x.escalated_to_team.name}" if x.escalated_to_team else None)
        events.append({"at": x.at, "kind": f"alert_{x.action}", "alert": x.alert_id,
                       "detector": x.alert.detector, "by": who.display_name if who else None,
                       "to": to, "to_status": x.to_status, "reason": x.reason,
                       "verdict": x.verdict or None})
    for h in _between(DetectorThreshold.history.filter(patient_id=patient_id)
                      .select_related("history_user__clinician"), "history_date", since, until)[:limit]:
        who = getattr(h.history_user, "clinician", None) if h.history_user else None
        events.append({"at": h.history_date, "kind": "thresholds_changed", "detector": h.detector,
                       "params": None if h.history_type == "-" else h.params,
                       "by": who.display_name if who else None, "reason": h.history_change_reason or ""})
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
    """The detectors' own check of a clinician's override (known detector, tunable
    parameter, numeric value), so the API refuses what the detectors would reject."""
    if not DETECTOR_RE.match(detector):
        raise exceptions.ValidationError({"detector": "is not a detector name"})
    try:
        return validate_overrides(detector, params)
    except ValueError as exc:
        raise exceptions.ValidationError({"params": str(exc)}) from None


def tunable_parameters() -> dict[str, tuple[str, ...]]:
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
        body = ThresholdWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        overrides = check_overrides(detector, body.validated_data["params"])
        row = workflow.set_thresholds(patient, detector, overrides, request.user,
                                      body.validated_data.get("reason", ""))
        audit(request, patient.pk, "thresholds_changed", detector=detector)
        return Response(ThresholdSerializer(row).data)

    @extend_schema(request=None, responses={204: None, **ERR},
                   description="Remove the override: the detector's defaults apply again.")
    def delete(self, request, patient_id: int, detector: str):
        require_clinician(request)
        patient = patient_or_404(request, patient_id, clinician_only=True)
        workflow.clear_thresholds(patient, detector, request.user)
        audit(request, patient.pk, "thresholds_cleared", detector=detector)
        return Response(status=status.HTTP_204_NO_CONTENT)
