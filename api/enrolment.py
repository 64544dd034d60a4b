"""What a clinic's own portal calls: invitations (a team lead invites patients and
clinicians; anyone with a code accepts it) and the team's members (a lead changes roles
and removes members). The rules are in ``care.enrolment``; every change is audited."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api import auth as api_auth
from api.errors import ERR, error_response
from api.views import me_payload
from care import enrolment
from care.access import audit, clinician_of
from care.models import CareTeam, Invitation, TeamMembership


class InvitationSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text="open, used, revoked or expired")
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = Invitation
        fields = ["id", "kind", "role", "display_name", "state", "created_by", "created_at", "expires_at",
                  "used_at"]


class InvitationCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[Invitation.PATIENT, Invitation.CLINICIAN])
    display_name = serializers.CharField(max_length=120)
    role = serializers.ChoiceField(choices=list(enrolment.ROLES), required=False, default="clinician")
    days = serializers.IntegerField(min_value=1, max_value=30, required=False, default=enrolment.INVITATION_DAYS)


class AcceptSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=80)
    username = serializers.RegexField(r"^[\w.@+-]{3,150}$", help_text="3 to 150 letters, digits or @.+-_")
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class MemberSerializer(serializers.Serializer):
    clinician = serializers.IntegerField(source="clinician_id")
    name = serializers.CharField(source="clinician.display_name")
    role = serializers.CharField()


class RoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=list(enrolment.ROLES))


def _team(team_id: int) -> CareTeam:
    team = CareTeam.objects.filter(pk=team_id).first()
    if team is None:
        raise exceptions.NotFound("no such team")
    return team


def _lead_team(request, team_id: int) -> CareTeam:
    team = _team(team_id)
    if not enrolment.is_lead(request.user, team):
        raise exceptions.PermissionDenied("only a lead of this team may do this")
    return team


def _refused(exc: enrolment.EnrolmentError) -> Response:
    return error_response([{"field": exc.field, "reason": exc.reason}], exc.status)


class TeamInvitationsView(APIView):
    @extend_schema(responses={200: InvitationSerializer(many=True), **ERR},
                   description="The team's invitations, newest first (a lead of the team; codes are never shown again).")
    def get(self, request, team_id: int):
        team = _lead_team(request, team_id)
        return Response(InvitationSerializer(team.invitations.select_related("created_by")[:500], many=True).data)

    @extend_schema(request=InvitationCreateSerializer,
                   responses={201: inline_serializer("InvitationIssued", {
                       "invitation": InvitationSerializer(), "code": serializers.CharField()}), **ERR},
                   description="Invite a patient (accepting creates the login, the patient and a consent "
                               "to this team) or a clinician (the login and a membership with `role`). "
                               "The code is shown this once.")
    def post(self, request, team_id: int):
        team = _lead_team(request, team_id)
        body = InvitationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        inv, code = enrolment.invite(team, request.user, d["kind"], d["display_name"], d["role"], d["days"])
        audit(request, None, "invitation_created", team=team.pk, invitation=inv.pk, kind=inv.kind)
        return Response({"invitation": InvitationSerializer(inv).data, "code": code}, status=status.HTTP_201_CREATED)


class TeamInvitationRevokeView(APIView):
    @extend_schema(request=None, responses={200: InvitationSerializer, **ERR},
                   description="Revoke an open invitation: its code stops working.")
    def post(self, request, team_id: int, invitation_id: int):
        team = _lead_team(request, team_id)
        inv = team.invitations.filter(pk=invitation_id).first()
        if inv is None:
            raise exceptions.NotFound("no such invitation")
        enrolment.revoke(inv)
        audit(request, None, "invitation_revoked", team=team.pk, invitation=inv.pk)
        return Response(InvitationSerializer(inv).data)


class InvitationAcceptView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=AcceptSerializer,
                   responses={201: inline_serializer("InvitationAccepted", {
                       "token": serializers.CharField(), "expiry": serializers.DateTimeField(),
                       "me": serializers.DictField()}), **ERR},
                   description="Accept an invitation: a new username and password make the login; "
                               "the answer signs the new user in (a token, as `auth/token`).")
    def post(self, request):
        body = AcceptSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        d = body.validated_data
        try:
            user, inv = enrolment.accept(d["code"], d["username"], d["password"])
        except enrolment.EnrolmentError as exc:
            return _refused(exc)
        patient_id = getattr(getattr(user, "patient", None), "pk", None)
        audit(request, patient_id, "invitation_accepted", actor=user, team=inv.team_id, invitation=inv.pk,
              kind=inv.kind)
        instance, raw = api_auth.issue(user)
        return Response({"token": raw, "expiry": instance.expiry, "me": me_payload(user)},
                        status=status.HTTP_201_CREATED)


class TeamMembersView(APIView):
    @extend_schema(responses={200: MemberSerializer(many=True), **ERR},
                   description="The team's clinicians and their roles (members of the team).")
    def get(self, request, team_id: int):
        team = _team(team_id)
        clinician = clinician_of(request.user)
        if clinician is None or not TeamMembership.objects.filter(team=team, clinician=clinician).exists():
            raise exceptions.PermissionDenied("only members of this team may list its members")
        rows = TeamMembership.objects.filter(team=team).select_related("clinician").order_by("clinician__display_name")
        return Response(MemberSerializer(rows, many=True).data)


class TeamMemberView(APIView):
    @extend_schema(request=RoleSerializer, responses={200: MemberSerializer, **ERR},
                   description="A lead changes a member's role (`clinician` or `lead`); a team keeps a lead (409).")
    def patch(self, request, team_id: int, clinician_id: int):
        team = _lead_team(request, team_id)
        body = RoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            m = enrolment.set_role(team, clinician_id, body.validated_data["role"])
        except enrolment.EnrolmentError as exc:
            return _refused(exc)
        audit(request, None, "member_role_changed", team=team.pk, clinician=clinician_id, role=m.role)
        return Response(MemberSerializer(m).data)

    @extend_schema(request=None, responses={204: None, **ERR},
                   description="A lead removes a member from the team; a team keeps a lead (409).")
    def delete(self, request, team_id: int, clinician_id: int):
        team = _lead_team(request, team_id)
        try:
            enrolment.remove_member(team, clinician_id)
        except enrolment.EnrolmentError as exc:
            return _refused(exc)
        audit(request, None, "member_removed", team=team.pk, clinician=clinician_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
