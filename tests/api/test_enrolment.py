"""Enrolment and team management (issue 16, item 2): invitations for patients and
clinicians, a team lead managing members, and who may call what."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from care.access import readable_patients
from care.models import AuditEvent, Invitation, Patient, TeamMembership

STRONG = "correct-horse-battery-42"


@pytest.fixture
def lead(world, as_user):
    TeamMembership.objects.filter(team=world.team_a, clinician=world.alice).update(role="lead")
    return as_user(world.alice)


def _invite(client, team, **body):
    r = client.post(f"/api/v1/teams/{team.pk}/invitations", {"display_name": "New Person", **body}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def test_a_patient_invitation_creates_the_login_the_patient_and_the_consent_to_the_team(world, lead, api):
    issued = _invite(lead, world.team_a, kind="patient")
    assert issued["code"].startswith("hsi_") and issued["invitation"]["state"] == "open"
    assert not Invitation.objects.filter(code_hash=issued["code"]).exists()  # only the digest is kept
    r = api.post("/api/v1/invitations/accept", {"code": issued["code"], "username": "newpat",
                                                "password": STRONG}, format="json")
    assert r.status_code == 201, r.content
    me = r.json()["me"]
    assert me["role"] == "patient"
    patient = Patient.objects.get(pk=me["patient_id"])
    assert patient.display_name == "New Person"
    assert readable_patients(world.alice.user).filter(pk=patient.pk).exists()  # assigned, with consent
    assert not readable_patients(world.bob.user).filter(pk=patient.pk).exists()
    api.credentials(HTTP_AUTHORIZATION=f"Token {r.json()['token']}")
    assert api.get(f"/api/v1/patients/{patient.pk}").status_code == 200
    assert AuditEvent.objects.filter(action="invitation_accepted", patient=patient).exists()


def test_a_code_works_once_and_an_expired_or_revoked_one_not_at_all(world, lead, api):
    once = _invite(lead, world.team_a, kind="patient")["code"]
    assert api.post("/api/v1/invitations/accept", {"code": once, "username": "aaa1", "password": STRONG},
                    format="json").status_code == 201
    again = api.post("/api/v1/invitations/accept", {"code": once, "username": "aaa2", "password": STRONG},
                     format="json")
    assert again.status_code == 400 and again.json()["errors"][0]["field"] == "code"
    expired = _invite(lead, world.team_a, kind="patient")
    Invitation.objects.filter(pk=expired["invitation"]["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked = _invite(lead, world.team_a, kind="patient")
    assert lead.post(f"/api/v1/teams/{world.team_a.pk}/invitations/{revoked['invitation']['id']}/revoke"
                     ).json()["state"] == "revoked"
    for code in (expired["code"], revoked["code"], "hsi_guess"):
        r = api.post("/api/v1/invitations/accept", {"code": code, "username": "aaa3", "password": STRONG}, format="json")
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "code"


def test_a_weak_password_or_a_taken_username_is_refused_and_the_code_stays_usable(world, lead, api):
    code = _invite(lead, world.team_a, kind="patient")["code"]
    weak = api.post("/api/v1/invitations/accept", {"code": code, "username": "bbb1", "password": "123"}, format="json")
    assert weak.status_code == 400 and weak.json()["errors"][0]["field"] == "password"
    taken = api.post("/api/v1/invitations/accept", {"code": code, "username": "PAT", "password": STRONG},
                     format="json")
    assert taken.status_code == 400 and taken.json()["errors"][0]["field"] == "username"
    assert api.post("/api/v1/invitations/accept", {"code": code, "username": "bbb1", "password": STRONG},
                    format="json").status_code == 201


def test_a_clinician_invitation_makes_a_member_with_the_role_given(world, lead, api):
    code = _invite(lead, world.team_a, kind="clinician", role="lead")["code"]
    r = api.post("/api/v1/invitations/accept", {"code": code, "username": "drnew", "password": STRONG}, format="json")
    assert r.status_code == 201 and r.json()["me"]["role"] == "clinician"
    assert TeamMembership.objects.get(team=world.team_a, clinician__user__username="drnew").role == "lead"


def test_only_a_lead_of_the_team_invites_or_manages_members(world, lead, as_user):
    carol = as_user(world.carol)  # a member, not a lead
    bob = as_user(world.bob)  # a lead of nothing here
    pat = as_user(world.pat)
    url = f"/api/v1/teams/{world.team_a.pk}"
    for client in (carol, bob, pat):
        assert client.post(f"{url}/invitations", {"kind": "patient", "display_name": "x"},
                           format="json").status_code == 403
        assert client.get(f"{url}/invitations").status_code == 403
        assert client.patch(f"{url}/members/{world.carol.pk}", {"role": "lead"}, format="json").status_code == 403
        assert client.delete(f"{url}/members/{world.carol.pk}").status_code == 403
    assert carol.get(f"{url}/members").status_code == 200  # members see who is in the team
    assert bob.get(f"{url}/members").status_code == 403
    assert APIClient().get(f"{url}/members").status_code == 401


def test_a_lead_changes_roles_and_removes_members_but_the_team_keeps_a_lead(world, lead):
    url = f"/api/v1/teams/{world.team_a.pk}/members"
    members = {m["clinician"]: m["role"] for m in lead.get(url).json()}
    assert members == {world.alice.pk: "lead", world.carol.pk: "clinician"}
    last = lead.patch(f"{url}/{world.alice.pk}", {"role": "clinician"}, format="json")
    assert last.status_code == 409
    assert lead.patch(f"{url}/{world.carol.pk}", {"role": "lead"}, format="json").json()["role"] == "lead"
    assert lead.delete(f"{url}/{world.carol.pk}").status_code == 204
    assert lead.delete(f"{url}/{world.alice.pk}").status_code == 409
    assert lead.delete(f"{url}/{world.bob.pk}").status_code == 404
    assert set(AuditEvent.objects.filter(action__in=["member_role_changed", "member_removed"])
               .values_list("action", flat=True)) == {"member_role_changed", "member_removed"}
