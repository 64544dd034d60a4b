"""Finding 4 (issue 15): refused accesses, failed sign-ins and writes are audited (who,
what, when, from where); consents, devices and team memberships keep a change history;
a patient lists who read their data; a team lead exports the team's audit trail."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from care.models import AuditEvent, Consent, TeamMembership
from tests.api.factories import PASSWORD


def _events(**filters):
    return AuditEvent.objects.filter(**filters).order_by("-id")


def test_a_refused_read_is_audited_with_who_and_from_where(world, as_user):
    assert as_user(world.bob).get(f"/api/v1/patients/{world.pat.pk}/chart").status_code == 404
    e = _events(actor=world.bob.user, outcome="refused").first()
    assert e is not None and e.action == "refused" and e.detail["patient_id"] == world.pat.pk
    assert e.detail["status"] == 404 and e.address == "127.0.0.1" and e.path.endswith("/chart")
    assert APIClient().get(f"/api/v1/patients/{world.pat.pk}").status_code in (401, 403)
    assert _events(actor=None, outcome="refused", detail__patient_id=world.pat.pk).exists()


def test_a_refused_dashboard_page_is_audited(world):
    c = Client()
    c.force_login(world.pat.user)
    assert c.get("/dashboard/").status_code == 403
    assert _events(actor=world.pat.user, outcome="refused", detail__status=403).exists()
    c.force_login(world.bob.user)
    assert c.get(f"/dashboard/patients/{world.pat.pk}/").status_code == 404
    assert _events(actor=world.bob.user, outcome="refused", detail__patient_id=world.pat.pk).exists()


def test_failed_sign_ins_are_audited_without_the_password(world):
    APIClient(REMOTE_ADDR="203.0.113.9").post("/api/v1/auth/token", {"username": "PAT", "password": "hunter2-x"},
                                              format="json")
    e = _events(action="login_failed").first()
    assert e.actor == world.pat.user and e.outcome == "failed" and e.address == "203.0.113.9"
    Client().post("/dashboard/login/", {"username": "nobody-here", "password": "hunter2-x"})
    e = _events(action="login_failed").first()
    assert e.actor is None and e.detail["via"] == "dashboard" and len(e.detail["username_sha256"]) == 16
    assert not AuditEvent.objects.filter(detail__icontains="hunter2").exists()
    assert "hunter2" not in str(list(AuditEvent.objects.values_list("detail", flat=True)))


def test_every_write_to_profile_devices_consents_context_thresholds_and_notes_is_audited(world, as_user):
    pat, alice = as_user(world.pat), as_user(world.alice)
    p = f"/api/v1/patients/{world.pat.pk}"
    assert pat.patch(p, {"timezone": "Europe/Paris"}, format="json").status_code == 200
    device = pat.post(f"{p}/devices", {"name": "ring", "kind": "ring"}, format="json").json()["id"]
    assert pat.post(f"{p}/devices/{device}/revoke").status_code == 200
    consent = pat.post(f"{p}/consents", {"team": world.team_b.pk}, format="json").json()["id"]
    assert pat.post(f"{p}/consents/{consent}/revoke").status_code == 200
    now = timezone.now()
    assert pat.post(f"{p}/context", {"tags": ["travel"], "starts_at": (now - timedelta(hours=2)).isoformat(),
                                     "ends_at": now.isoformat()}, format="json").status_code == 201
    assert alice.put(f"{p}/thresholds/hr_high_at_rest", {"params": {"threshold": 130}, "reason": "athlete"},
                     format="json").status_code == 200
    assert alice.delete(f"{p}/thresholds/hr_high_at_rest").status_code == 204
    assert alice.post(f"/api/v1/alerts/{world.red.pk}/notes", {"text": "called the patient"},
                      format="json").status_code == 201
    actions = set(_events(patient=world.pat).values_list("action", flat=True))
    assert {"profile_changed", "device_added", "device_revoked", "consent_granted", "consent_revoked",
            "context_reported", "thresholds_changed", "thresholds_cleared", "alert_note"} <= actions
    assert _events(action="profile_changed").first().detail == {"fields": ["timezone"]}
    assert "called the patient" not in str(list(AuditEvent.objects.values_list("detail", flat=True)))


def test_consents_devices_and_memberships_keep_their_history_with_who_changed_them(world, as_user):
    pat = as_user(world.pat)
    consent = world.pat.consents.get()
    assert pat.post(f"/api/v1/patients/{world.pat.pk}/consents/{consent.pk}/revoke").status_code == 200
    rows = list(Consent.history.filter(id=consent.pk).order_by("history_date"))
    assert [r.history_type for r in rows] == ["+", "~"]
    assert rows[0].revoked_at is None and rows[1].revoked_at is not None
    assert rows[1].history_user == world.pat.user
    assert pat.post(f"/api/v1/patients/{world.pat.pk}/devices/{world.device.pk}/revoke").status_code == 200
    last = world.device.history.order_by("-history_date").first()
    assert last.revoked_at is not None and last.history_user == world.pat.user
    assert not hasattr(last, "token_hash"), "the token's hash stays out of the history"
    m = TeamMembership.objects.get(team=world.team_a, clinician=world.alice)
    m.role = TeamMembership.LEAD
    m.save()
    before, after = m.history.order_by("history_date")[:2]
    assert (before.role, after.role) == ("clinician", "lead")


def test_a_patient_lists_who_read_their_data_and_no_one_else_may(world, as_user):
    assert as_user(world.alice).get(f"/api/v1/patients/{world.pat.pk}/chart?days=7").status_code == 200
    as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}")
    r = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/access-log")
    assert r.status_code == 200
    rows = r.json()["results"]
    assert {"who": "Dr. Alice", "role": "clinician", "action": "read_chart", "outcome": "ok"} in [
        {k: row[k] for k in ("who", "role", "action", "outcome")} for row in rows]
    assert all(row["who"] != "pat" for row in rows), "the patient's own reads are left out"
    assert as_user(world.alice).get(f"/api/v1/patients/{world.pat.pk}/access-log").status_code == 403


def test_a_team_lead_exports_the_teams_audit_trail_and_no_one_else_may(world, as_user):
    TeamMembership.objects.filter(team=world.team_a, clinician=world.alice).update(role=TeamMembership.LEAD)
    as_user(world.carol).get(f"/api/v1/patients/{world.pat.pk}/chart?days=7")
    as_user(world.bob).get(f"/api/v1/patients/{world.other.pk}/chart?days=7")
    r = as_user(world.alice).get(f"/api/v1/teams/{world.team_a.pk}/audit.csv")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert any(x["actor"] == "carol" and x["action"] == "read_chart" and x["patient_id"] == str(world.pat.pk)
               for x in rows)
    assert not any(x["actor"] == "bob" for x in rows), "another team's reads of its own patients"
    assert as_user(world.carol).get(f"/api/v1/teams/{world.team_a.pk}/audit.csv").status_code == 403
    assert as_user(world.bob).get(f"/api/v1/teams/{world.team_a.pk}/audit.csv").status_code == 403
    assert as_user(world.pat).get(f"/api/v1/teams/{world.team_a.pk}/audit.csv").status_code == 403
    assert APIClient().get(f"/api/v1/teams/{world.team_a.pk}/audit.csv").status_code in (401, 403)
    assert as_user(world.alice).get("/api/v1/teams/999999/audit.csv").status_code == 404
    assert _events(actor=world.alice.user, action="export_team_audit").exists()


def test_signing_in_with_the_right_password_is_not_audited_as_a_failure(world):
    r = APIClient().post("/api/v1/auth/token", {"username": "pat", "password": PASSWORD}, format="json")
    assert r.status_code == 200 and not _events(action="login_failed").exists()
