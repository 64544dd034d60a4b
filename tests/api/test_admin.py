"""The Django admin (issue 16, item 2, first part): every model registered, every write
audited, the audit trail read-only, and sign-in only through the dashboard's lock-out."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client

from api.admin import APP_LABELS
from care.models import AuditEvent, CareTeam, Device


@pytest.fixture
def staff(db):
    user = get_user_model().objects.create_superuser("root", "root@localhost", "pw-admin-123456")
    client = Client()
    client.force_login(user)
    return client


def test_every_model_of_the_project_is_in_the_admin():
    missing = [m._meta.label for label in APP_LABELS for m in apps.get_app_config(label).get_models()
               if not m._meta.model_name.startswith("historical") and not admin.site.is_registered(m)]
    assert missing == []


def test_an_admin_change_writes_an_audit_event_naming_the_model_and_object(world, staff):
    team = CareTeam.objects.get(pk=world.team_a.pk)
    r = staff.post(f"/admin/care/careteam/{team.pk}/change/", {"name": "Cardiology A (renamed)"})
    assert r.status_code == 302, r.content[:500]
    assert CareTeam.objects.get(pk=team.pk).name == "Cardiology A (renamed)"
    event = AuditEvent.objects.get(action="admin_changed")
    assert event.actor.username == "root" and event.detail == {"model": "care.careteam", "object": str(team.pk)}


def test_a_patients_object_deleted_in_the_admin_is_audited_against_the_patient(world, staff):
    r = staff.post(f"/admin/care/device/{world.revoked_device.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    assert not Device.objects.filter(pk=world.revoked_device.pk).exists()
    assert AuditEvent.objects.get(action="admin_deleted").patient_id == world.pat.pk


def test_the_audit_trail_cannot_be_changed_or_deleted_in_the_admin(world, staff):
    AuditEvent.objects.create(action="read_chart", patient=world.pat)
    event = AuditEvent.objects.latest("id")
    assert staff.get("/admin/care/auditevent/").status_code == 200
    assert staff.post(f"/admin/care/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_device_page_never_shows_the_token_hash(world, staff):
    page = staff.get(f"/admin/care/device/{world.device.pk}/change/").content.decode()
    assert Device.objects.get(pk=world.device.pk).token_hash not in page


def test_the_admin_sign_in_goes_through_the_dashboard_sign_in_page(db):
    r = Client().get("/admin/login/?next=/admin/")
    assert r.status_code == 302 and r["Location"].startswith("/dashboard/login/")
    assert Client().get("/admin/").status_code == 302


def test_a_users_change_in_the_admin_is_audited_too(world, staff):
    user = world.carol.user
    r = staff.post(f"/admin/auth/user/{user.pk}/change/", {
        "username": user.username, "is_active": "", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01", "initial-date_joined_1": "00:00:00"})
    assert r.status_code == 302, r.content[:800]
    assert get_user_model().objects.get(pk=user.pk).is_active is False
    assert AuditEvent.objects.get(action="admin_changed").detail["model"] == "auth.user"
