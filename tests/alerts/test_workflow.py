"""The alert workflow as plain functions: bounds, access, reasons, and the API and the
dashboard giving the same answer for the same action."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from alerts import states, workflow
from alerts.models import Alert, AlertAction, AlertNote
from tests.api.factories import PASSWORD


def test_acknowledging_records_the_step_and_assigns_the_alert_to_the_clinician(world):
    action = workflow.acknowledge(world.red, world.alice.user, "looking")
    assert (action.from_status, action.to_status, action.reason) == ("open", "acknowledged", "looking")
    row = Alert.objects.get(pk=world.red.pk)
    assert row.status == states.ACKNOWLEDGED and row.assigned_to_id == world.alice.user.pk
    assert world.red.status == states.ACKNOWLEDGED  # the caller's instance follows


def test_a_snooze_must_end_in_the_future_and_within_thirty_days(world):
    now = timezone.now()
    with pytest.raises(workflow.InvalidInput) as past:
        workflow.snooze(world.red, world.alice.user, now - timedelta(minutes=1), now=now)
    assert past.value.field == "until" and "future" in past.value.reason
    with pytest.raises(workflow.InvalidInput) as far:
        workflow.snooze(world.red, world.alice.user, now + timedelta(days=30, minutes=1), now=now)
    assert far.value.field == "until" and "30 days" in far.value.reason
    assert not AlertAction.objects.filter(alert=world.red).exists()
    workflow.snooze(world.red, world.alice.user, now + timedelta(days=30), now=now)
    row = Alert.objects.get(pk=world.red.pk)
    assert row.status == states.SNOOZED and row.snoozed_until == now + timedelta(days=30)


def test_undoing_a_snooze_returns_the_alert_to_the_status_it_had_before(world):
    with pytest.raises(workflow.InvalidInput) as not_snoozed:
        workflow.unsnooze(world.red, world.alice.user)
    assert "not snoozed" in not_snoozed.value.reason
    workflow.escalate(world.red, world.alice.user, clinician_id=world.carol.pk, reason="cardiology")
    workflow.snooze(world.red, world.carol.user, timezone.now() + timedelta(hours=4))
    with pytest.raises(workflow.NotAllowed):
        workflow.unsnooze(world.red, world.bob.user)  # a clinician of another team
    action = workflow.unsnooze(world.red, world.carol.user)
    assert (action.action, action.from_status, action.to_status) == ("unsnooze", "snoozed", "escalated")
    row = Alert.objects.get(pk=world.red.pk)
    assert (row.status, row.snoozed_until, row.assigned_to_id) == (states.ESCALATED, None, world.carol.user.pk)
    workflow.snooze(world.yellow, world.alice.user, timezone.now() + timedelta(hours=1))
    workflow.unsnooze(world.yellow, world.alice.user)
    assert Alert.objects.get(pk=world.yellow.pk).status == states.OPEN


def test_the_dashboard_and_the_api_undo_a_snooze_alike(world, as_user):
    until = (timezone.now() + timedelta(hours=4)).isoformat()
    api = as_user(world.alice)
    assert api.post(f"/api/v1/alerts/{world.red.pk}/snooze", {"until": until}, format="json").status_code == 200
    undone = api.post(f"/api/v1/alerts/{world.red.pk}/unsnooze", {}, format="json")
    assert undone.status_code == 200 and undone.json()["status"] == "open"
    again = api.post(f"/api/v1/alerts/{world.red.pk}/unsnooze", {}, format="json")
    assert again.status_code == 400 and "not snoozed" in again.json()["errors"][0]["reason"]
    page = _dashboard(world)
    page.post(f"/dashboard/alerts/{world.yellow.pk}/snooze", {"hours": "24", "view": "row"}, HTTP_HX_REQUEST="true")
    row = page.post(f"/dashboard/alerts/{world.yellow.pk}/unsnooze", {"view": "row"}, HTTP_HX_REQUEST="true")
    assert row.status_code == 200 and 'data-action="unsnooze"' not in row.content.decode()
    assert [s[:3] for s in _steps(world.red)] == [s[:3] for s in _steps(world.yellow)] == [
        ("snooze", "open", "snoozed"), ("unsnooze", "snoozed", "open")]
    assert as_user(world.bob).post(f"/api/v1/alerts/{world.red.pk}/unsnooze", {}, format="json").status_code in (403, 404)


def test_resolving_requires_a_reason_and_ends_the_workflow_except_for_notes(world):
    for reason in ("", "  ", "ok"):
        with pytest.raises(workflow.InvalidInput) as err:
            workflow.resolve(world.red, world.alice.user, reason)
        assert err.value.field == "reason"
    with pytest.raises(workflow.InvalidInput):
        workflow.resolve(world.red, world.alice.user, "x" * 301)
    workflow.resolve(world.red, world.alice.user, "rest after exercise")
    assert Alert.objects.get(pk=world.red.pk).resolution_reason == "rest after exercise"
    with pytest.raises(workflow.AlreadyResolved):
        workflow.acknowledge(world.red, world.alice.user)
    note = workflow.add_note(world.red, world.alice.user, "  phoned, fine  ")
    assert note.text == "phoned, fine"


def test_escalation_goes_only_to_someone_who_may_read_the_patient(world):
    with pytest.raises(workflow.InvalidInput) as to_bob:
        workflow.escalate(world.red, world.alice.user, clinician_id=world.bob.pk)  # other team
    assert to_bob.value.field == "clinician"
    with pytest.raises(workflow.InvalidInput) as to_team_b:
        workflow.escalate(world.red, world.alice.user, team_id=world.team_b.pk)
    assert to_team_b.value.field == "team"
    with pytest.raises(workflow.InvalidInput):
        workflow.escalate(world.red, world.alice.user, clinician_id=world.carol.pk, team_id=world.team_a.pk)
    action = workflow.escalate(world.red, world.alice.user, clinician_id=world.carol.pk, reason="cardiology")
    assert action.escalated_to_clinician == world.carol
    assert Alert.objects.get(pk=world.red.pk).assigned_to_id == world.carol.user.pk


def test_only_a_clinician_who_may_read_the_patient_works_its_alerts(world):
    with pytest.raises(workflow.NotAllowed):
        workflow.acknowledge(world.red, world.bob.user)  # a clinician of another team
    with pytest.raises(workflow.NotAllowed):
        workflow.acknowledge(world.red, world.pat.user)  # the patient
    with pytest.raises(workflow.NotAllowed):
        workflow.add_note(world.revoked_alert, world.alice.user, "consent was revoked")
    assert not AlertAction.objects.exists() and not AlertNote.objects.exists()


def test_a_note_needs_text_within_the_limit(world):
    for text in ("", "   ", "x" * 2001):
        with pytest.raises(workflow.InvalidInput) as err:
            workflow.add_note(world.red, world.alice.user, text)
        assert err.value.field == "text"


def _dashboard(world) -> Client:
    client = Client()
    assert client.login(username=world.alice.user.username, password=PASSWORD)
    return client


def _steps(alert):
    return list(AlertAction.objects.filter(alert=alert).values_list("action", "from_status", "to_status", "reason"))


def test_the_dashboard_and_the_api_refuse_a_resolve_without_a_reason_alike(world, as_user):
    api = as_user(world.alice).post(f"/api/v1/alerts/{world.red.pk}/resolve", {"reason": ""}, format="json")
    page = _dashboard(world).post(f"/dashboard/alerts/{world.yellow.pk}/resolve", {"reason": ""},
                                  HTTP_HX_REQUEST="true")
    assert api.status_code == 400 and api.json()["errors"][0]["field"] == "reason"
    assert page.status_code == 200 and "reason" in page.content.decode()
    assert Alert.objects.filter(pk__in=[world.red.pk, world.yellow.pk], status="open").count() == 2


def test_the_dashboard_cannot_snooze_beyond_the_apis_thirty_days(world, as_user):
    until = (timezone.now() + timedelta(days=31)).isoformat()
    api = as_user(world.alice).post(f"/api/v1/alerts/{world.red.pk}/snooze", {"until": until}, format="json")
    assert api.status_code == 400 and api.json()["errors"][0]["field"] == "until"
    # Neither a far "until" (the form's old unchecked path) nor hours past 30 days pass.
    page = _dashboard(world)
    page.post(f"/dashboard/alerts/{world.yellow.pk}/snooze", {"until": "2099-01-01T00:00:00+00:00"})
    page.post(f"/dashboard/alerts/{world.yellow.pk}/snooze", {"hours": str(24 * 31)})
    yellow = Alert.objects.get(pk=world.yellow.pk)
    assert yellow.snoozed_until is None or yellow.snoozed_until <= timezone.now() + timedelta(days=30)
    assert not AlertAction.objects.filter(alert=world.yellow, snoozed_until__gt=timezone.now() + timedelta(days=30)).exists()


def test_the_same_resolve_through_the_dashboard_and_the_api_leaves_the_same_record(world, as_user):
    as_user(world.alice).post(f"/api/v1/alerts/{world.red.pk}/resolve", {"reason": "false alarm"}, format="json")
    _dashboard(world).post(f"/dashboard/alerts/{world.yellow.pk}/resolve", {"reason": "false alarm"})
    assert _steps(world.red) == _steps(world.yellow) == [("resolve", "open", "resolved", "false alarm")]
    red, yellow = Alert.objects.get(pk=world.red.pk), Alert.objects.get(pk=world.yellow.pk)
    assert (red.status, red.resolution_reason) == (yellow.status, yellow.resolution_reason)


def test_the_same_escalation_through_the_dashboard_and_the_api_leaves_the_same_record(world, as_user):
    as_user(world.alice).post(f"/api/v1/alerts/{world.red.pk}/escalate",
                              {"clinician": world.carol.pk, "reason": "cardiology"}, format="json")
    page = _dashboard(world)
    asked = page.post(f"/dashboard/alerts/{world.yellow.pk}/escalate",
                      {"target": f"clinician:{world.carol.pk}", "reason": "cardiology"})
    # The dashboard names the target and asks to confirm before it escalates.
    assert asked.status_code == 200 and "Escalate to Nurse Carol?" in asked.content.decode()
    assert _steps(world.yellow) == []
    page.post(f"/dashboard/alerts/{world.yellow.pk}/escalate",
              {"target": f"clinician:{world.carol.pk}", "reason": "cardiology", "confirm": "yes"})
    assert _steps(world.red) == _steps(world.yellow) == [("escalate", "open", "escalated", "cardiology")]
    red, yellow = Alert.objects.get(pk=world.red.pk), Alert.objects.get(pk=world.yellow.pk)
    assert red.assigned_to_id == yellow.assigned_to_id == world.carol.user.pk
