"""Patient-side API: sign-in, profile, devices, consents, daily summaries, the chart,
advice with feedback, reported context, and the patient's own alerts.

Routes take the patient id (``/patients/{id}/...``) for both patients and clinicians;
``api.lookup`` (over ``care.access``) decides who may read it (404 otherwise) and who
may change it (403).
Every read of a patient's data writes an audit event.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import zoneinfo
from datetime import date, timedelta

from django.contrib.auth import authenticate
from django.contrib.auth import logout as django_logout
from django.db import transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    IntegerField,
    Max,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from knox.models import AuthToken
from rest_framework import exceptions, generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts import queries, states
from alerts.models import Alert
from api import auth as api_auth
from api import chart as chart_data
from api import query
from api.errors import ERR, error_response
from api.lookup import patient_or_404
from api.serializers import (
    ConsentCreateSerializer,
    ConsentSerializer,
    ContextReportSerializer,
    DeviceCreateSerializer,
    DeviceIssuedSerializer,
    DeviceSerializer,
    FeedbackResultSerializer,
    FeedbackSerializer,
    MeSerializer,
    PatientAlertSerializer,
    PatientSerializer,
    PatientStatusSerializer,
    RecommendationSerializer,
    TeamSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
)
from api.throttling import LoginGuard, client_address
from care.access import (
    audit,
    audit_failed_login,
    audit_many,
    clinician_of,
    patient_of,
    readable_patients,
)
from care.models import Assignment, AuditEvent, CareTeam, Consent, Device, TeamMembership
from coaching import context as coaching_context
from coaching.features import baseline, load_days
from coaching.models import ContextReport, Feedback, Recommendation


def me_payload(user) -> dict:
    patient = patient_of(user)
    clinician = clinician_of(user)
    return {
        "id": user.pk, "username": user.get_username(),
        "role": "clinician" if clinician else "patient" if patient else "none",
        "patient_id": patient.pk if patient else None,
        "clinician_id": clinician.pk if clinician else None,
        "teams": [{"id": t.pk, "name": t.name} for t in clinician.teams.all()] if clinician else [],
    }


def local_today(patient) -> date:
    """The patient's today, in their own time zone."""
    return timezone.now().astimezone(zoneinfo.ZoneInfo(patient.timezone or "UTC")).date()


def _parse_day(value: str | None, name: str, default: date) -> date:
    return query.day(value, name, default)


def _int_param(request, name: str, default: int, low: int, high: int) -> int:
    return query.integer(request.query_params.get(name), name, default, low, high)


# ------------------------------------------------------------------ auth

class TokenView(APIView):
    """Sign in from the app: username and password for a token (``Authorization: Token ...``)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=TokenRequestSerializer,
                   responses={200: TokenResponseSerializer, **ERR},
                   description="Exchange a username and password for an API token. "
                               "Repeated failures lock the username and the address out for a while.")
    def post(self, request):
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        guard = LoginGuard(body.validated_data["username"], client_address(request))
        if wait := guard.blocked():
            audit_failed_login(request, body.validated_data["username"], "api", locked=True)
            return error_response([{"field": "(request)",
                                    "reason": "too many failed sign-ins; try again later"}], 429,
                                  headers={"Retry-After": str(wait)})
        user = authenticate(request, username=body.validated_data["username"],
                            password=body.validated_data["password"])
        if user is None or not user.is_active:
            guard.failed()
            audit_failed_login(request, body.validated_data["username"], "api")
            return error_response([{"field": "(request)", "reason": "wrong username or password"}], 400)
        guard.succeeded()
        instance, raw = api_auth.issue(user)
        return Response({"token": raw, "expiry": instance.expiry, "me": me_payload(user)})


def _end_session(request) -> None:
    if request.auth is None and hasattr(request, "session"):  # signed in by session
        django_logout(request._request)


class LogoutView(APIView):
    @extend_schema(request=None, responses={204: None, **ERR},
                   description="Sign this client out: its token stops working. Other clients "
                               "(the user's other devices) stay signed in.")
    def post(self, request):
        if isinstance(request.auth, AuthToken):
            request.auth.delete()
        _end_session(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllView(APIView):
    @extend_schema(request=None, responses={204: None, **ERR},
                   description="Sign out everywhere: every token of the user stops working.")
    def post(self, request):
        api_auth.revoke_all(request.user)
        _end_session(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(responses={200: MeSerializer, **ERR}, description="Who the caller is.")
    def get(self, request):
        return Response(me_payload(request.user))


class TeamListView(generics.ListAPIView):
    """Care teams (names only), so a patient can choose whom to grant consent."""

    serializer_class = TeamSerializer
    queryset = CareTeam.objects.order_by("name")


# -------------------------------------------------------------- patients

class PatientListView(generics.ListAPIView):
    """The patients the caller may read, with their latest status: for a clinician, the
    consenting patients of their teams; for a patient, themself."""

    serializer_class = PatientStatusSerializer

    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=["red", "yellow", "ok"]),
        OpenApiParameter("q", str, description="part of the display name"),
    ], responses={200: PatientStatusSerializer(many=True), **ERR})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return patient_status_queryset(self.request.user, self.request.query_params)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        for p in page:
            p.status = "red" if p.has_red else "yellow" if p.has_yellow else "ok"
        audit_many(request, [p.pk for p in page], "read_patient_status")
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


def patient_status_queryset(user, query_params):
    """Readable patients with their latest status (shared by the API and the dashboard)."""
    active = Alert.objects.active().filter(patient=OuterRef("pk"))
    counts = active.order_by().values("patient").annotate(c=Count("*")).values("c")
    qs = (readable_patients(user)
          .annotate(open_alerts=Coalesce(Subquery(counts), 0),
                    has_red=Exists(active.filter(severity=states.RED)),
                    has_yellow=Exists(active.filter(severity=states.YELLOW)),
                    last_alert_at=Subquery(Alert.objects.filter(patient=OuterRef("pk"))
                                           .order_by("-opened_at").values("opened_at")[:1]),
                    last_seen_at=Subquery(Device.objects.filter(patient=OuterRef("pk"))
                                          .order_by().values("patient")
                                          .annotate(m=Max("last_seen_at")).values("m")))
          .prefetch_related("care_teams"))
    wanted = query_params.get("status")
    if wanted == "red":
        qs = qs.filter(has_red=True)
    elif wanted == "yellow":
        qs = qs.filter(has_red=False, has_yellow=True)
    elif wanted == "ok":
        qs = qs.filter(has_red=False, has_yellow=False)
    elif wanted:
        raise exceptions.ValidationError({"status": "must be red, yellow or ok"})
    if q := query_params.get("q"):
        qs = qs.filter(display_name__icontains=q[:60])
    return qs.order_by("-has_red", "-has_yellow", "display_name", "id")


class PatientDetailView(APIView):
    @extend_schema(responses={200: PatientSerializer, **ERR}, description="A patient's profile.")
    def get(self, request, patient_id: int):
        patient = patient_or_404(request, patient_id)
        audit(request, patient.pk, "read_profile")
        return Response(PatientSerializer(patient).data)

    @extend_schema(request=PatientSerializer, responses={200: PatientSerializer, **ERR},
                   description="The patient updates their own profile.")
    def patch(self, request, patient_id: int):
        patient = patient_or_404(request, patient_id, self_only=True)
        body = PatientSerializer(patient, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        body.save()
        audit(request, patient.pk, "profile_changed", fields=sorted(body.validated_data))
        return Response(body.data)


class DeviceListView(APIView):
    @extend_schema(responses={200: DeviceSerializer(many=True), **ERR},
                   description="The patient's devices (tokens are never shown again). The devices page "
                               "shows the uploaded imports beside them: the `Link` header (rel "
                               "`imports`) points at `GET .../imports`.")
    def get(self, request, patient_id: int):
        patient = patient_or_404(request, patient_id, self_only=True)
        audit(request, patient.pk, "read_devices")
        imports = reverse("patient-imports", kwargs={"patient_id": patient.pk})
        return Response(DeviceSerializer(patient.devices.all(), many=True).data,
                        headers={"Link": f'<{imports}>; rel="imports"'})

    @extend_schema(request=DeviceCreateSerializer, responses={201: DeviceIssuedSerializer, **ERR},
                   description="Add a device. The answer holds its token, shown this once.")
    def post(self, request, patient_id: int):
        patient = patient_or_404(request, patient_id, self_only=True)
        body = DeviceCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if patient.devices.active().count() >= 20:
            raise exceptions.ValidationError({"(request)": "at most 20 active devices"})
        device, raw = Device.issue(patient, body.validated_data["name"], body.validated_data["kind"])
        audit(request, patient.pk, "device_added", device=device.pk)
        data = DeviceSerializer(device).data
        data["token"] = raw
        return Response(data, status=status.HTTP_201_CREATED)


class DeviceRevokeView(APIView):
    @extend_schema(request=None, responses={200: DeviceSerializer, **ERR},
                   description="Revoke a device: its token stops working at once.")
    def post(self, request, patient_id: int, device_id: int):
        patient = patient_or_404(request, patient_id, self_only=True)
        device = patient.devices.filter(pk=device_id).first()
        if device is None:
            raise exceptions.NotFound("no such device")
        device.revoke()
        audit(request, patient.pk, "device_revoked", device=device.pk)
        return Response(DeviceSerializer(device).data)


class ConsentListView(APIView):
    @extend_schema(responses={200: ConsentSerializer(many=True), **ERR},
                   description="The care teams the patient granted access to (and revoked).")
    def get(self, request, patient_id: int):
        patient = patient_or_404(request, patient_id, self_only=True)
        audit(request, patient.pk, "read_consents")
        return Response(ConsentSerializer(patient.consents.select_related("team").order_by("-granted_at"),
                                          many=True).data)

    @extend_schema(request=ConsentCreateSerializer, responses={201: ConsentSerializer, **ERR},
                   description="Grant a care team access to the patient's data.")
    def post(self, request, patient_id: int):
        patient = patient_or_404(request, patient_id, self_only=True)
        body = ConsentCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        team = body.validated_data["team"]
        with transaction.atomic():
            existing = Consent.objects.select_for_update().filter(
                patient=patient, team=team, revoked_at__isnull=True).first()
            if existing is not None:
                return Response(ConsentSerializer(existing).data, status=status.HTTP_200_OK)
            consent = Consent.objects.create(patient=patient, team=team)
            audit(request, patient.pk, "consent_granted", consent=consent.pk, team=team.pk)
        return Response(ConsentSerializer(consent).data, status=status.HTTP_201_CREATED)


class ConsentRevokeView(APIView):
    @extend_schema(request=None, responses={200: ConsentSerializer, **ERR},
                   description="Revoke a consent: the team loses access at once.")
    def post(self, request, patient_id: int, consent_id: int):
        patient = patient_or_404(request, patient_id, self_only=True)
        consent = patient.consents.filter(pk=consent_id).first()
        if consent is None:
            raise exceptions.NotFound("no such consent")
        if consent.revoked_at is None:
            consent.revoked_at = timezone.now()
            consent.save(update_fields=["revoked_at"])
            audit(request, patient.pk, "consent_revoked", consent=consent.pk, team=consent.team_id)
        return Response(ConsentSerializer(consent).data)


# ------------------------------------------------------------ health data

class DailySummarySerializer(serializers.Serializer):
    day = serializers.DateField()
    partial = serializers.BooleanField(help_text="the patient's local today: the day is not over")
    resting_hr = serializers.FloatField(allow_null=True)
    mean_hr = serializers.FloatField(allow_null=True)
    hrv = serializers.FloatField(allow_null=True)
    steps = serializers.FloatField(allow_null=True)
    sleep_minutes = serializers.FloatField(allow_null=True)
    active_minutes = serializers.FloatField(allow_null=True)


class DailySummariesSerializer(serializers.Serializer):
    patient = serializers.IntegerField()
    start = serializers.DateField()
    end = serializers.DateField()
    timezone = serializers.CharField(help_text="the patient's time zone: days are its local days")
    today = serializers.DateField(help_text="the patient's local today")
    baseline = serializers.DictField(allow_null=True)
    days = DailySummarySerializer(many=True)


class DailySummaryView(APIView):
    @extend_schema(parameters=[
        OpenApiParameter("start", OpenApiTypes.DATE, description="first day (default: 29 days before end)"),
        OpenApiParameter("end", OpenApiTypes.DATE, description="last day (default: the patient's local today)"),
    ], responses={200: DailySummariesSerializer, **ERR},
        description="One row a day (the patient's local days): resting and mean heart rate, HRV, "
                    "steps, sleep, moderate-equivalent active minutes; and the resting heart-rate "
                    "baseline. Today's row has `partial: true`.")
    def get(self, request, patient_id: int):
        patient = patient_or_404(request, patient_id)
        today = local_today(patient)
        end = _parse_day(request.query_params.get("end"), "end", today)
        start = _parse_day(request.query_params.get("start"), "start", end - timedelta(days=29))
        if start > end:
            raise exceptions.ValidationError({"start": "must not be after end"})
        if (end - start).days > 366:
            raise exceptions.ValidationError({"start": "at most 366 days at a time"})
        audit(request, patient.pk, "read_daily", start=start.isoformat(), end=end.isoformat())
        days = load_days(patient.pk, start - timedelta(days=28), end)
        shown = [d for d in days if d.day >= start]
        base = baseline(d.resting_hr for d in days[-29:-1])
        return Response({
            "patient": patient.pk, "start": start, "end": end, "timezone": patient.timezone,
            "today": today,
            "baseline": None if base is None else {"metric": "resting_hr", "median": base.median,
                                                   "mad": base.mad, "days": base.days},
            "days": [DailySummarySerializer({**dataclasses.asdict(d), "partial": d.day == today}).data
                     for d in shown],
        })


class ChartView(APIView):
    @extend_schema(parameters=[OpenApiParameter("days", int, description="1 to 90 (default 30)")],
                   responses={200: OpenApiTypes.OBJECT, **ERR},
                   description="Everything the patient page draws: hourly heart rate, daily "
                               "resting heart rate with its 28-day baseline, the forecast band, "
                               "steps, sleep and alert markers, as columnar arrays.")
    def get(self, request, patient_id: int):
        days = _int_param(request, "days", 30, 1, chart_data.MAX_DAYS)
        patient = patient_or_404(request, patient_id)
        audit(request, patient.pk, "read_chart", days=days)
        return HttpResponse(chart_data.chart_json(patient.pk, days), content_type="application/json")


class RecommendationListView(generics.ListAPIView):
    serializer_class = RecommendationSerializer

    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=["active", "dismissed", "expired", "all"]),
        OpenApiParameter("category", str, enum=["sleep", "activity", "recovery", "care_team"]),
    ], responses={200: RecommendationSerializer(many=True), **ERR},
        description="The patient's advice, most urgent first (default: active only).")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        patient = patient_or_404(self.request, self.kwargs["patient_id"])
        audit(self.request, patient.pk, "read_recommendations")
        qs = Recommendation.objects.filter(patient=patient).select_related("patient")
        wanted = self.request.query_params.get("status", "active")
        if wanted not in ("active", "dismissed", "expired", "all"):
            raise exceptions.ValidationError({"status": "must be active, dismissed, expired or all"})
        if wanted != "all":
            qs = qs.filter(status=wanted)
        if category := self.request.query_params.get("category"):
            if category not in ("sleep", "activity", "recovery", "care_team"):
                raise exceptions.ValidationError({"category": "must be sleep, activity, recovery or care_team"})
            qs = qs.filter(category=category)
        rank = Case(When(priority="high", then=Value(0)), When(priority="medium", then=Value(1)),
                    default=Value(2), output_field=IntegerField())
        return qs.annotate(rank=rank).order_by("-day", "rank", "id")


class FeedbackView(APIView):
    @extend_schema(request=FeedbackSerializer, responses={201: FeedbackResultSerializer, **ERR},
                   description="The patient says whether advice helped, dismisses it (it stays "
                               "away for a while), or gives context (alcohol, travel, illness, "
                               "stress...), which annotates overlapping alerts. Once per "
                               "recommendation: a second answers 409. Context already reported "
                               "over the last day is not reported again.")
    def post(self, request, patient_id: int, recommendation_id: int):
        patient = patient_or_404(request, patient_id, self_only=True)
        rec = Recommendation.objects.filter(patient=patient, pk=recommendation_id).first()
        if rec is None:
            raise exceptions.NotFound("no such recommendation")
        body = FeedbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        ctx = None
        with transaction.atomic():
            # Once per recommendation: the row lock makes two concurrent posts one 201 and one 409.
            rec = Recommendation.objects.select_for_update().get(pk=rec.pk)
            if Feedback.objects.filter(recommendation=rec).exists():
                return error_response([{"field": "(request)",
                                        "reason": "feedback on this advice was already sent"}], 409)
            fb = Feedback.objects.create(recommendation=rec, patient=patient, helpful=data["helpful"],
                                         dismissed=data["dismissed"], context=sorted(set(data["context"])),
                                         comment=data["comment"])
            if data["dismissed"] and rec.status == Recommendation.ACTIVE:
                rec.status = Recommendation.DISMISSED
                rec.save(update_fields=["status"])
            if data["context"]:
                now = timezone.now()
                ctx = coaching_context.covering(patient.pk, data["context"], now - timedelta(days=1), now)
                if ctx is None:
                    ctx = coaching_context.report(patient.pk, data["context"], now - timedelta(days=1),
                                                  now, source="feedback")
        return Response({"id": fb.pk, "recommendation": rec.pk, "helpful": fb.helpful,
                         "dismissed": fb.dismissed, "context": fb.context,
                         "context_report": ctx.pk if ctx else None}, status=status.HTTP_201_CREATED)


class ContextListView(generics.ListCreateAPIView):
    serializer_class = ContextReportSerializer

    @extend_schema(responses={200: ContextReportSerializer(many=True), **ERR},
                   description="Context the patient reported (alcohol, travel, illness, stress...).")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=ContextReportSerializer, responses={201: ContextReportSerializer, **ERR},
                   description="Report context over a period; optionally quiet named detectors "
                               "for a stated number of hours (at most 7 days). Red alerts are "
                               "never quieted.")
    def post(self, request, *args, **kwargs):
        patient = patient_or_404(request, self.kwargs["patient_id"], self_only=True)
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        ctx = coaching_context.report(patient.pk, d["tags"], d["starts_at"], d["ends_at"],
                                      note=d.get("note", ""), quiet=d.get("quiet_detectors"),
                                      quiet_hours=d.get("quiet_hours"))
        audit(request, patient.pk, "context_reported", context=ctx.pk)
        return Response(self.get_serializer(ctx).data, status=status.HTTP_201_CREATED)

    def get_queryset(self):
        patient = patient_or_404(self.request, self.kwargs["patient_id"])
        audit(self.request, patient.pk, "read_context")
        return ContextReport.objects.filter(patient=patient).prefetch_related("quiets")


class PatientAlertListView(generics.ListAPIView):
    """The patient's alerts as the patient sees them (``PatientAlertSerializer``): a title
    and what to do, never the care team's notes, actions or the detector's evidence.
    Clinicians read the same view; their own is ``alerts/{id}``."""

    serializer_class = PatientAlertSerializer

    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=list(states.STATUS_FILTERS)),
    ], responses={200: PatientAlertSerializer(many=True), **ERR})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        patient = patient_or_404(self.request, self.kwargs["patient_id"])
        audit(self.request, patient.pk, "read_alerts")
        qs = Alert.objects.filter(patient=patient).select_related("patient")
        wanted = self.request.query_params.get("status", states.ALL)
        return queries.by_status(qs, wanted).order_by("-opened_at", "-id")


class PatientAlertDetailView(APIView):
    @extend_schema(responses={200: PatientAlertSerializer, **ERR},
                   description="One of the patient's alerts as the patient sees it.")
    def get(self, request, patient_id: int, alert_id: int):
        patient = patient_or_404(request, patient_id)
        alert = Alert.objects.filter(patient=patient, pk=alert_id).select_related("patient").first()
        if alert is None:
            raise exceptions.NotFound("no such alert")
        audit(request, patient.pk, "read_alert", alert=alert.pk)
        return Response(PatientAlertSerializer(alert).data)



# ------------------------------------------------------------------ audit

class AccessLogEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    who = serializers.CharField(help_text="the clinician's name, or the user name")
    role = serializers.ChoiceField(choices=["clinician", "patient", "other"])
    action = serializers.CharField(help_text="what was read or changed, e.g. read_chart, alert_snooze")
    outcome = serializers.CharField()


class AccessLogView(generics.ListAPIView):
    """Who read or changed the patient's data (everyone but the patient), newest first."""

    serializer_class = AccessLogEntrySerializer

    def get_queryset(self):
        patient = patient_or_404(self.request, self.kwargs["patient_id"], self_only=True)
        audit(self.request, patient.pk, "read_access_log")
        return (AuditEvent.objects.filter(patient=patient).exclude(actor_id=self.request.user.pk)
                .select_related("actor__clinician", "actor__patient").order_by("-at", "-id"))

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        rows = []
        for e in page:
            clinician = getattr(e.actor, "clinician", None) if e.actor else None
            patient = getattr(e.actor, "patient", None) if e.actor else None
            rows.append({"at": e.at, "outcome": e.outcome, "action": e.action,
                         "who": clinician.display_name if clinician else (e.actor.username if e.actor else "system"),
                         "role": "clinician" if clinician else "patient" if patient else "other"})
        return self.get_paginated_response(rows)


class TeamAuditExportView(APIView):
    """The team's audit trail as CSV, for a lead of the team: every event by one of its
    members or about one of its patients, over ``start``..``end`` (at most 366 days)."""

    @extend_schema(parameters=[
        OpenApiParameter("start", OpenApiTypes.DATE, description="first day (default: 29 days before end)"),
        OpenApiParameter("end", OpenApiTypes.DATE, description="last day (default: today, UTC)"),
    ], responses={(200, "text/csv"): OpenApiTypes.STR, **ERR})
    def get(self, request, team_id: int):
        clinician = clinician_of(request.user)
        team = CareTeam.objects.filter(pk=team_id).first()
        if team is None:
            raise exceptions.NotFound("no such team")
        if clinician is None or not TeamMembership.objects.filter(
                team=team, clinician=clinician, role=TeamMembership.LEAD).exists():
            raise exceptions.PermissionDenied("only a lead of this team may export its audit trail")
        end = _parse_day(request.query_params.get("end"), "end", timezone.now().date())
        start = _parse_day(request.query_params.get("start"), "start", end - timedelta(days=29))
        if start > end or (end - start).days > 366:
            raise exceptions.ValidationError({"start": "must be on or before end, at most 366 days before"})
        members = TeamMembership.objects.filter(team=team).values("clinician__user_id")
        patients = Assignment.objects.filter(team=team).values("patient_id")
        events = (AuditEvent.objects.filter(at__date__gte=start, at__date__lte=end)
                  .filter(Q(actor_id__in=members) | Q(patient_id__in=patients))
                  .select_related("actor").order_by("at", "id"))
        audit(request, None, "export_team_audit", team=team.pk, start=start.isoformat(), end=end.isoformat())
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["at", "actor", "patient_id", "action", "outcome", "address", "path"])
        for e in events.iterator(chunk_size=2000):
            writer.writerow([e.at.isoformat(), e.actor.username if e.actor else "", e.patient_id or "",
                             e.action, e.outcome, e.address, e.path])
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="audit-team-{team.pk}-{start}-{end}.csv"'
        return response
