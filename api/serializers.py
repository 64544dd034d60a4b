"""Serializers of the patient and care-team API. Request bodies are validated here."""

from __future__ import annotations

import re
import zoneinfo
from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from alerts import presentation
from alerts.models import Alert, AlertAction, AlertNote, DetectorThreshold
from care.models import CareTeam, Consent, Device, Patient
from coaching.models import CONTEXT_TAGS, ContextReport, Recommendation
from coaching.rules import DISCLAIMER

DETECTOR_RE = re.compile(r"^[a-z0-9_.-]{1,48}$")


# ------------------------------------------------------------------ auth

class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False,
                                     style={"input_type": "password"})


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=["patient", "clinician", "none"])
    patient_id = serializers.IntegerField(allow_null=True)
    clinician_id = serializers.IntegerField(allow_null=True)
    teams = serializers.ListField(child=serializers.DictField())


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="shown this once; send it as `Authorization: Token …`")
    expiry = serializers.DateTimeField(help_text="when it ends unless used (each use extends it, "
                                                 "up to API_TOKEN_MAX_DAYS after sign-in)")
    me = MeSerializer()


# -------------------------------------------------------------- patients

class PatientSerializer(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "display_name", "timezone", "birth_year", "active", "created_at"]
        read_only_fields = ["id", "active", "created_at"]

    def validate_birth_year(self, value):
        if value is not None and not 1900 <= value <= timezone.now().year:
            raise serializers.ValidationError("must be a year between 1900 and this year")
        return value


class PatientStatusSerializer(serializers.ModelSerializer):
    status = serializers.CharField()
    open_alerts = serializers.IntegerField()
    last_alert_at = serializers.DateTimeField(allow_null=True)
    last_seen_at = serializers.DateTimeField(allow_null=True)
    teams = serializers.SerializerMethodField()

    class Meta:
        model = Patient
        fields = ["id", "display_name", "status", "open_alerts", "last_alert_at",
                  "last_seen_at", "teams"]

    def get_teams(self, obj) -> list[str]:
        return [t.name for t in obj.care_teams.all()]


class DeviceSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = Device
        fields = ["id", "name", "kind", "token_hint", "created_at", "revoked_at",
                  "last_seen_at", "active"]
        read_only_fields = ["id", "token_hint", "created_at", "revoked_at", "last_seen_at"]


class DeviceCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    kind = serializers.ChoiceField(choices=["watch", "phone", "ring", "band", "scale", "other"],
                                   default="watch")


class DeviceIssuedSerializer(DeviceSerializer):
    token = serializers.CharField(read_only=True, help_text="shown once: store it on the device")

    class Meta(DeviceSerializer.Meta):
        fields = [*DeviceSerializer.Meta.fields, "token"]


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = CareTeam
        fields = ["id", "name"]


class ConsentSerializer(serializers.ModelSerializer):
    team_name = serializers.CharField(source="team.name", read_only=True)
    active = serializers.SerializerMethodField()

    class Meta:
        model = Consent
        fields = ["id", "team", "team_name", "granted_at", "revoked_at", "active"]
        read_only_fields = ["id", "granted_at", "revoked_at"]

    def get_active(self, obj) -> bool:
        return obj.revoked_at is None


class ConsentCreateSerializer(serializers.Serializer):
    team = serializers.PrimaryKeyRelatedField(queryset=CareTeam.objects.all())


# --------------------------------------------------------- recommendations

class RecommendationSerializer(serializers.ModelSerializer):
    disclaimer = serializers.SerializerMethodField()
    timezone = serializers.CharField(source="patient.timezone", read_only=True)
    created_at_local = serializers.SerializerMethodField()

    class Meta:
        model = Recommendation
        fields = ["id", "rule", "category", "priority", "title", "message", "reason",
                  "guideline", "day", "trigger", "alert", "status", "created_at", "timezone",
                  "created_at_local", "disclaimer"]

    def get_created_at_local(self, obj) -> str | None:
        return local_iso(obj.created_at, obj.patient.timezone)

    def get_disclaimer(self, obj) -> str:
        return DISCLAIMER


class FeedbackSerializer(serializers.Serializer):
    helpful = serializers.BooleanField(required=False, allow_null=True, default=None)
    dismissed = serializers.BooleanField(required=False, default=False)
    context = serializers.ListField(
        child=serializers.ChoiceField(choices=CONTEXT_TAGS), required=False, default=list,
        max_length=len(CONTEXT_TAGS))
    comment = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if attrs.get("helpful") is None and not attrs.get("dismissed") and not attrs.get("context") \
                and not attrs.get("comment"):
            raise serializers.ValidationError("say whether it helped, dismiss it, or give context")
        return attrs


class FeedbackResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    recommendation = serializers.IntegerField()
    helpful = serializers.BooleanField(allow_null=True)
    dismissed = serializers.BooleanField()
    context = serializers.ListField(child=serializers.CharField())
    context_report = serializers.IntegerField(allow_null=True)


class ContextReportSerializer(serializers.ModelSerializer):
    quiet_detectors = serializers.ListField(
        child=serializers.CharField(max_length=48), required=False, write_only=True,
        max_length=10, default=list)
    quiet_hours = serializers.FloatField(required=False, write_only=True, min_value=0.25,
                                         max_value=168, allow_null=True, default=None)
    tags = serializers.ListField(child=serializers.ChoiceField(choices=CONTEXT_TAGS),
                                 min_length=1, max_length=len(CONTEXT_TAGS))
    quieted = serializers.SerializerMethodField()

    class Meta:
        model = ContextReport
        fields = ["id", "tags", "starts_at", "ends_at", "note", "source", "created_at",
                  "quiet_detectors", "quiet_hours", "quieted"]
        read_only_fields = ["id", "source", "created_at"]

    def get_quieted(self, obj) -> list[dict]:
        return [{"detector": q.detector, "until": q.until.isoformat()} for q in obj.quiets.all()]

    def validate_quiet_detectors(self, value):
        for name in value:
            if not DETECTOR_RE.match(name):
                raise serializers.ValidationError(f"{name[:48]!r} is not a detector name")
        return value

    def validate(self, attrs):
        if attrs["ends_at"] < attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": "must not be before starts_at"})
        if attrs["ends_at"] - attrs["starts_at"] > timedelta(days=31):
            raise serializers.ValidationError({"ends_at": "a report covers at most 31 days"})
        if attrs.get("quiet_detectors") and not attrs.get("quiet_hours"):
            raise serializers.ValidationError({"quiet_hours": "say for how long (hours, at most 168)"})
        return attrs


# ----------------------------------------------------------------- alerts

class AlertSerializer(serializers.ModelSerializer):
    patient_name = serializers.CharField(source="patient.display_name", read_only=True)
    assigned_to = serializers.SerializerMethodField()
    context = serializers.SerializerMethodField()
    quieted = serializers.SerializerMethodField()
    title = serializers.SerializerMethodField(help_text="the alert in plain language "
                                              "(alerts.presentation.title)")

    class Meta:
        model = Alert
        fields = ["id", "patient", "patient_name", "title", "detector", "severity", "status",
                  "window_start", "window_end", "evidence", "signal_closed", "opened_at",
                  "updated_at", "snoozed_until", "assigned_to", "resolution_reason",
                  "context", "quieted", "verdict"]

    def get_title(self, obj) -> str:
        return presentation.title(obj.detector, obj.evidence)

    def get_assigned_to(self, obj) -> str | None:
        user = obj.assigned_to
        if user is None:
            return None
        clinician = getattr(user, "clinician", None)
        return clinician.display_name if clinician else user.get_username()

    def get_context(self, obj) -> list[dict]:
        return self.context.get("contexts", {}).get(obj.pk, [])

    def get_quieted(self, obj) -> bool:
        return bool(getattr(obj, "is_quieted", False))


def local_iso(at, zone: str) -> str | None:
    """An instant as ISO 8601 in the patient's time zone (with its offset), None for None."""
    return None if at is None else at.astimezone(zoneinfo.ZoneInfo(zone or "UTC")).isoformat()


class PatientAlertSerializer(serializers.ModelSerializer):
    """An alert as the patient sees it: a plain-language title, what to do, and where it
    stands. No evidence, detector parameters, notes, actions, assignee or verdict."""

    title = serializers.SerializerMethodField()
    what_to_do = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField(help_text="open, in_review or closed")
    status_text = serializers.SerializerMethodField()
    timezone = serializers.CharField(source="patient.timezone", read_only=True)
    started_at_local = serializers.SerializerMethodField()
    ended_at_local = serializers.SerializerMethodField()
    opened_at_local = serializers.SerializerMethodField()
    started_at = serializers.DateTimeField(source="window_start", read_only=True)
    ended_at = serializers.DateTimeField(source="window_end", read_only=True)

    class Meta:
        model = Alert
        fields = ["id", "title", "severity", "what_to_do", "status", "status_text", "timezone",
                  "started_at", "started_at_local", "ended_at", "ended_at_local", "opened_at",
                  "opened_at_local"]

    def get_title(self, obj) -> str:
        return presentation.title(obj.detector, obj.evidence, for_patient=True)

    def get_what_to_do(self, obj) -> str:
        return presentation.what_to_do(obj.detector, obj.severity)

    def get_status(self, obj) -> str:
        return presentation.patient_status(obj.status)[0]

    def get_status_text(self, obj) -> str:
        return presentation.patient_status(obj.status)[1]

    def get_started_at_local(self, obj) -> str | None:
        return local_iso(obj.window_start, obj.patient.timezone)

    def get_ended_at_local(self, obj) -> str | None:
        return local_iso(obj.window_end, obj.patient.timezone)

    def get_opened_at_local(self, obj) -> str | None:
        return local_iso(obj.opened_at, obj.patient.timezone)


class AlertActionSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    escalated_to_clinician = serializers.CharField(source="escalated_to_clinician.display_name",
                                                   allow_null=True, read_only=True, default=None)
    escalated_to_team = serializers.CharField(source="escalated_to_team.name", allow_null=True,
                                              read_only=True, default=None)

    class Meta:
        model = AlertAction
        fields = ["id", "action", "at", "actor", "from_status", "to_status", "snoozed_until",
                  "escalated_to_clinician", "escalated_to_team", "reason", "verdict"]

    def get_actor(self, obj) -> str | None:
        if obj.actor is None:
            return None
        clinician = getattr(obj.actor, "clinician", None)
        return clinician.display_name if clinician else obj.actor.get_username()


class AlertNoteSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()
    text = serializers.CharField(max_length=2000, trim_whitespace=True)

    class Meta:
        model = AlertNote
        fields = ["id", "text", "author", "at"]
        read_only_fields = ["id", "author", "at"]

    def get_author(self, obj) -> str | None:
        if obj.author is None:
            return None
        clinician = getattr(obj.author, "clinician", None)
        return clinician.display_name if clinician else obj.author.get_username()


class AlertDetailSerializer(AlertSerializer):
    actions = AlertActionSerializer(many=True, read_only=True)
    notes = AlertNoteSerializer(many=True, read_only=True)

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "raise_evidence", "latest_evidence", "latest_severity",
                  "actions", "notes"]


class SnoozeSerializer(serializers.Serializer):
    until = serializers.DateTimeField(
        help_text="in the future, at most 30 days ahead (alerts.workflow.snooze checks it)")
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class EscalateSerializer(serializers.Serializer):
    clinician = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    team = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if (attrs["clinician"] is None) == (attrs["team"] is None):
            raise serializers.ValidationError("name exactly one of clinician or team")
        return attrs


class ResolveSerializer(serializers.Serializer):
    reason = serializers.CharField(min_length=3, max_length=300)
    verdict = serializers.ChoiceField(
        choices=Alert._meta.get_field("verdict").choices, required=False, allow_blank=True, default="",
        help_text="was the alert actionable? repeated not_actionable verdicts raise this "
                  "patient's threshold for the detector, within bounds")


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class EscalationTargetsSerializer(serializers.Serializer):
    clinicians = serializers.ListField(child=serializers.DictField())
    teams = serializers.ListField(child=serializers.DictField())


# ------------------------------------------------------------- thresholds

class ThresholdSerializer(serializers.ModelSerializer):
    updated_by = serializers.SerializerMethodField()

    class Meta:
        model = DetectorThreshold
        fields = ["detector", "params", "updated_by", "updated_at"]
        read_only_fields = ["detector", "updated_by", "updated_at"]

    def get_updated_by(self, obj) -> str | None:
        return obj.updated_by.get_username() if obj.updated_by else None


class ThresholdWriteSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="",
                                   help_text="why (kept in the threshold history)")
    params = serializers.DictField(
        child=serializers.JSONField(), allow_empty=False,
        help_text="detector parameters: names to numbers or booleans (at most 20)")

    def validate_params(self, value):
        if len(value) > 20:
            raise serializers.ValidationError("at most 20 parameters")
        for key, v in value.items():
            if not DETECTOR_RE.match(str(key)):
                raise serializers.ValidationError(f"{str(key)[:48]!r} is not a parameter name")
            if isinstance(v, bool):
                continue
            if not isinstance(v, int | float) or v != v or v in (float("inf"), float("-inf")):
                raise serializers.ValidationError(f"{key}: must be a finite number or a boolean")
            if abs(v) > 1e6:
                raise serializers.ValidationError(f"{key}: out of range")
        return value


class QualityTeamSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class QualityRowSerializer(serializers.Serializer):
    team = QualityTeamSerializer()
    detector = serializers.CharField(allow_null=True, help_text="null: all detectors together")
    days = serializers.IntegerField(help_text="the period: the last 30 or 90 days")
    patients = serializers.IntegerField(help_text="the team's consenting patients")
    patient_months = serializers.FloatField()
    alerts = serializers.IntegerField()
    alert_days = serializers.IntegerField(help_text="patient-days with an alert of this detector open")
    alert_days_per_patient_month = serializers.FloatField(allow_null=True)
    judged = serializers.IntegerField(help_text="alerts resolved in the period with a verdict")
    not_actionable = serializers.IntegerField()
    not_actionable_share = serializers.FloatField(allow_null=True)


class QualitySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    periods = serializers.ListField(child=serializers.IntegerField())
    rows = QualityRowSerializer(many=True)
