"""Enrolment and team management: invitations (one-time codes) and a team lead's say over
the team's members. Views call these; every change is audited by the caller's view.

* ``invite``: a lead of the team makes a code (shown once, kept as a SHA-256) for a patient
  or a clinician, valid ``INVITATION_DAYS`` (7) days.
* ``accept``: the code, a new username and a password create the login, and
  - for a patient: the patient, assigned to the team, with an active consent to it;
  - for a clinician: the clinician, a member of the team with the invitation's role.
  A code works once; an expired, revoked or used code is refused the same way as an unknown
  one (nothing reveals which codes exist).
* ``set_role`` / ``remove_member``: a lead changes a member's role or removes a member; a
  team always keeps at least one lead.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from care.models import (
    Assignment,
    CareTeam,
    Clinician,
    Consent,
    Invitation,
    Patient,
    TeamMembership,
    hash_token,
)

INVITATION_DAYS = 7
ROLES = ("clinician", TeamMembership.LEAD)


class EnrolmentError(ValueError):
    """A refused request: ``field`` and ``reason`` for the API's error format."""

    def __init__(self, field: str, reason: str, status: int = 400):
        self.field, self.reason, self.status = field, reason, status
        super().__init__(f"{field}: {reason}")


def is_lead(user, team: CareTeam) -> bool:
    return TeamMembership.objects.filter(team=team, clinician__user=user, role=TeamMembership.LEAD).exists()


def invite(team: CareTeam, by, kind: str, display_name: str, role: str = "clinician",
           days: int = INVITATION_DAYS) -> tuple[Invitation, str]:
    """A new invitation and its code (returned this once)."""
    if kind not in (Invitation.PATIENT, Invitation.CLINICIAN):
        raise EnrolmentError("kind", "must be patient or clinician")
    if role not in ROLES:
        raise EnrolmentError("role", f"must be one of {', '.join(ROLES)}")
    code = Invitation.new_code()
    inv = Invitation.objects.create(
        team=team, kind=kind, role=role if kind == Invitation.CLINICIAN else "", display_name=display_name,
        code_hash=hash_token(code), created_by=by, expires_at=timezone.now() + timedelta(days=days))
    return inv, code


def accept(code: str, username: str, password: str):
    """Create the login (and the patient or clinician) from a code; returns (user, invitation)."""
    User = get_user_model()
    with transaction.atomic():
        inv = (Invitation.objects.select_for_update().select_related("team")
               .filter(code_hash=hash_token(code)).first())
        if inv is None or inv.state != "open":
            raise EnrolmentError("code", "is not a valid invitation code (unknown, used, revoked or expired)")
        if User.objects.filter(username__iexact=username).exists():
            raise EnrolmentError("username", "is taken")
        user = User(username=username)
        try:
            password_validation.validate_password(password, user)
        except ValidationError as exc:
            raise EnrolmentError("password", " ".join(exc.messages)) from None
        user.set_password(password)
        try:
            user.save()
        except IntegrityError:
            raise EnrolmentError("username", "is taken") from None
        if inv.kind == Invitation.PATIENT:
            patient = Patient.objects.create(user=user, display_name=inv.display_name)
            Assignment.objects.create(team=inv.team, patient=patient)
            Consent.objects.create(patient=patient, team=inv.team)
        else:
            clinician = Clinician.objects.create(user=user, display_name=inv.display_name)
            TeamMembership.objects.create(team=inv.team, clinician=clinician, role=inv.role or "clinician")
        inv.used_at, inv.used_by = timezone.now(), user
        inv.save(update_fields=["used_at", "used_by"])
    return user, inv


def revoke(inv: Invitation) -> Invitation:
    if inv.state == "open":
        inv.revoked_at = timezone.now()
        inv.save(update_fields=["revoked_at"])
    return inv


def _keeps_a_lead(team: CareTeam, membership: TeamMembership) -> None:
    others = TeamMembership.objects.filter(team=team, role=TeamMembership.LEAD).exclude(pk=membership.pk)
    if membership.role == TeamMembership.LEAD and not others.exists():
        raise EnrolmentError("(request)", "a team keeps at least one lead", status=409)


def _lock_team(team: CareTeam) -> None:
    """Lock the team's memberships: two leads demoting each other at once cannot both win."""
    list(TeamMembership.objects.select_for_update().filter(team=team).values_list("pk", flat=True))


def set_role(team: CareTeam, clinician_id: int, role: str) -> TeamMembership:
    if role not in ROLES:
        raise EnrolmentError("role", f"must be one of {', '.join(ROLES)}")
    with transaction.atomic():
        _lock_team(team)
        m = TeamMembership.objects.select_for_update().filter(team=team, clinician_id=clinician_id).first()
        if m is None:
            raise EnrolmentError("clinician", "is not a member of this team", status=404)
        if role != TeamMembership.LEAD:
            _keeps_a_lead(team, m)
        m.role = role
        m.save(update_fields=["role"])
    return m


def remove_member(team: CareTeam, clinician_id: int) -> None:
    with transaction.atomic():
        _lock_team(team)
        m = TeamMembership.objects.select_for_update().filter(team=team, clinician_id=clinician_id).first()
        if m is None:
            raise EnrolmentError("clinician", "is not a member of this team", status=404)
        _keeps_a_lead(team, m)
        m.delete()
