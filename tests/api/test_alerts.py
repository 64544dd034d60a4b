"""The care team's alert queue and its actions."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from alerts.models import Alert, AlertAction, AlertNote, DetectorQuiet
from tests.api.factories import make_alert


def test_the_queue_puts_red_before_yellow_and_newest_first(world, as_user):
    newer_yellow = make_alert(world.pat2, "sleep_debt", "yellow", 5)
    body = as_user(world.alice).get("/api/v1/alerts").json()
    ids = [a["id"] for a in body["results"]]
    assert ids == [world.red.pk, newer_yellow.pk, world.yellow.pk]
    assert body["count"] == 3


def test_the_queue_filters_by_severity_detector_patient_and_status(world, as_user):
    alice = as_user(world.alice)
    assert [a["id"] for a in alice.get("/api/v1/alerts?severity=yellow").json()["results"]] == [world.yellow.pk]
    assert [a["id"] for a in alice.get("/api/v1/alerts?detector=hr_high_at_rest").json()["results"]] == [world.red.pk]
    assert alice.get(f"/api/v1/alerts?patient={world.pat2.pk}").json()["count"] == 0
    Alert.objects.filter(pk=world.red.pk).update(status="resolved")
    assert [a["id"] for a in alice.get("/api/v1/alerts").json()["results"]] == [world.yellow.pk]
    assert [a["id"] for a in alice.get("/api/v1/alerts?status=resolved").json()["results"]] == [world.red.pk]


def test_the_queue_refuses_a_bad_filter_in_the_one_error_format(world, as_user):
    r = as_user(world.alice).get("/api/v1/alerts?severity=purple")
    assert r.status_code == 400
    assert r.json() == {"errors": [{"field": "severity", "reason": "must be red, yellow or info"}]}


def test_the_queue_paginates_with_limit_and_offset(world, as_user):
    for i in range(5):
        make_alert(world.pat2, "wear_gap", "info", 100 + i)
    body = as_user(world.alice).get("/api/v1/alerts?limit=2&offset=2").json()
    assert body["count"] == 7 and len(body["results"]) == 2 and "offset=4" in body["next"]


def test_a_polling_client_gets_only_what_changed_since_its_last_poll(world, as_user):
    mark = timezone.now()
    Alert.objects.filter(pk=world.yellow.pk).update(updated_at=mark + timedelta(seconds=1))
    r = as_user(world.alice).get("/api/v1/alerts", {"updated_since": mark.isoformat()})
    assert [a["id"] for a in r.json()["results"]] == [world.yellow.pk]


def test_acknowledging_assigns_the_alert_and_records_who_did_it(world, as_user):
    r = as_user(world.alice).post(f"/api/v1/alerts/{world.red.pk}/acknowledge", {}, format="json")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "acknowledged" and body["assigned_to"] == "Dr. Alice"
    assert body["actions"][0]["action"] == "acknowledge" and body["actions"][0]["actor"] == "Dr. Alice"
    assert body["actions"][0]["from_status"] == "open"


def test_a_snoozed_alert_leaves_the_queue_until_its_time_comes(world, as_user):
    alice = as_user(world.alice)
    until = timezone.now() + timedelta(hours=2)
    r = alice.post(f"/api/v1/alerts/{world.red.pk}/snooze", {"until": until.isoformat()}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "snoozed"
    assert world.red.pk not in [a["id"] for a in alice.get("/api/v1/alerts").json()["results"]]
    Alert.objects.filter(pk=world.red.pk).update(snoozed_until=timezone.now() - timedelta(minutes=1))
    assert world.red.pk in [a["id"] for a in alice.get("/api/v1/alerts").json()["results"]]


def test_snoozing_into_the_past_or_beyond_thirty_days_is_refused(world, as_user):
    alice = as_user(world.alice)
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    far = (timezone.now() + timedelta(days=31)).isoformat()
    for until in (past, far):
        r = alice.post(f"/api/v1/alerts/{world.red.pk}/snooze", {"until": until}, format="json")
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "until"


def test_escalating_to_a_clinician_hands_the_alert_over(world, as_user):
    r = as_user(world.alice).post(f"/api/v1/alerts/{world.red.pk}/escalate",
                                  {"clinician": world.carol.pk, "reason": "needs a cardiologist"}, format="json")
    assert r.status_code == 200
    assert r.json()["status"] == "escalated" and r.json()["assigned_to"] == "Nurse Carol"
    assert as_user(world.carol).get("/api/v1/alerts?assigned=me").json()["results"][0]["id"] == world.red.pk


def test_escalating_to_someone_who_cannot_see_the_patient_is_refused(world, as_user):
    alice = as_user(world.alice)
    r = alice.post(f"/api/v1/alerts/{world.red.pk}/escalate", {"clinician": world.bob.pk}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "clinician"
    r = alice.post(f"/api/v1/alerts/{world.red.pk}/escalate", {"team": world.team_b.pk}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "team"
    assert Alert.objects.get(pk=world.red.pk).status == "open"


def test_escalating_to_a_team_that_cares_for_the_patient_is_recorded(world, as_user):
    r = as_user(world.alice).post(f"/api/v1/alerts/{world.red.pk}/escalate", {"team": world.team_a.pk}, format="json")
    assert r.status_code == 200
    assert r.json()["actions"][-1]["escalated_to_team"] == "Cardiology A"


def test_escalation_needs_exactly_one_target(world, as_user):
    r = as_user(world.alice).post(f"/api/v1/alerts/{world.red.pk}/escalate",
                                  {"clinician": world.carol.pk, "team": world.team_a.pk}, format="json")
    assert r.status_code == 400


def test_resolving_needs_a_reason_and_then_closes_the_alert_to_further_actions(world, as_user):
    alice = as_user(world.alice)
    assert alice.post(f"/api/v1/alerts/{world.red.pk}/resolve", {}, format="json").status_code == 400
    r = alice.post(f"/api/v1/alerts/{world.red.pk}/resolve", {"reason": "exercise, not at rest"}, format="json")
    assert r.status_code == 200 and r.json()["resolution_reason"] == "exercise, not at rest"
    r = alice.post(f"/api/v1/alerts/{world.red.pk}/acknowledge", {}, format="json")
    assert r.status_code == 409
    assert AlertAction.objects.filter(alert=world.red).count() == 1


def test_notes_are_kept_in_order_with_their_author(world, as_user):
    alice = as_user(world.alice)
    for text in ("called the patient", "will call again tomorrow"):
        assert alice.post(f"/api/v1/alerts/{world.red.pk}/notes", {"text": text}, format="json").status_code == 201
    notes = alice.get(f"/api/v1/alerts/{world.red.pk}").json()["notes"]
    assert [n["text"] for n in notes] == ["called the patient", "will call again tomorrow"]
    assert {n["author"] for n in notes} == {"Dr. Alice"}
    assert AlertNote.objects.count() == 2


def test_escalation_targets_are_the_people_who_can_see_the_patient(world, as_user):
    body = as_user(world.alice).get(f"/api/v1/alerts/{world.red.pk}/escalation-targets").json()
    assert body == {"clinicians": [{"id": world.carol.pk, "name": "Nurse Carol"}],
                    "teams": [{"id": world.team_a.pk, "name": "Cardiology A"}]}


def test_context_the_patient_reported_annotates_overlapping_alerts(world, as_user):
    r = as_user(world.pat).post(f"/api/v1/patients/{world.pat.pk}/context", {
        "tags": ["alcohol"], "starts_at": (timezone.now() - timedelta(hours=3)).isoformat(),
        "ends_at": timezone.now().isoformat()}, format="json")
    assert r.status_code == 201
    results = {a["id"]: a for a in as_user(world.alice).get("/api/v1/alerts").json()["results"]}
    assert results[world.red.pk]["context"][0]["tags"] == ["alcohol"]
    assert results[world.yellow.pk]["context"] == [{**results[world.red.pk]["context"][0]}]


def test_a_quieted_detector_keeps_its_yellow_alerts_out_of_the_queue_but_never_red_ones(world, as_user):
    r = as_user(world.pat).post(f"/api/v1/patients/{world.pat.pk}/context", {
        "tags": ["travel"], "starts_at": timezone.now().isoformat(),
        "ends_at": (timezone.now() + timedelta(days=2)).isoformat(),
        "quiet_detectors": ["nightsignal_rhr", "hr_high_at_rest"], "quiet_hours": 48}, format="json")
    assert r.status_code == 201 and len(r.json()["quieted"]) == 2
    quiet_yellow = make_alert(world.pat, "nightsignal_rhr", "yellow", -5)
    quiet_red = make_alert(world.pat, "hr_high_at_rest", "red", -5)
    alice = as_user(world.alice)
    shown = [a["id"] for a in alice.get("/api/v1/alerts").json()["results"]]
    assert quiet_red.pk in shown and quiet_yellow.pk not in shown
    everything = alice.get("/api/v1/alerts?include_quieted=true").json()["results"]
    assert next(a for a in everything if a["id"] == quiet_yellow.pk)["quieted"] is True


def test_quieting_is_capped_at_seven_days(world, as_user):
    r = as_user(world.pat).post(f"/api/v1/patients/{world.pat.pk}/context", {
        "tags": ["illness"], "starts_at": timezone.now().isoformat(),
        "ends_at": (timezone.now() + timedelta(days=1)).isoformat(),
        "quiet_detectors": ["cusum_rhr"], "quiet_hours": 168}, format="json")
    assert r.status_code == 201
    quiet = DetectorQuiet.objects.get(patient=world.pat)
    assert timedelta(days=6, hours=23) < quiet.until - quiet.starts_at <= timedelta(days=7)


def test_a_patient_can_read_their_alerts_but_not_the_care_teams_notes(world, as_user):
    as_user(world.alice).post(f"/api/v1/alerts/{world.red.pk}/notes", {"text": "internal"}, format="json")
    body = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/alerts").json()
    assert {a["id"] for a in body["results"]} == {world.red.pk, world.yellow.pk}
    assert "internal" not in str(body)


def test_thresholds_are_checked_by_the_detectors_rules_and_stored_for_them(world, as_user):
    alice = as_user(world.alice)
    url = f"/api/v1/patients/{world.pat.pk}/thresholds"
    bad = alice.put(f"{url}/hr_high_at_rest", {"params": {"colour": 3}}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "params"
    unknown = alice.put(f"{url}/no_such_detector", {"params": {"threshold": 3}}, format="json")
    assert unknown.status_code == 400
    ok = alice.put(f"{url}/hr_high_at_rest", {"params": {"threshold": 125, "duration_min": 15}}, format="json")
    assert ok.status_code == 200 and ok.json()["updated_by"] == "alice"
    assert alice.get(url).json() == [ok.json()]
    assert alice.delete(f"{url}/hr_high_at_rest").status_code == 204
    assert alice.get(url).json() == []


def test_the_timeline_tells_what_happened_newest_first(world, as_user):
    alice = as_user(world.alice)
    alice.post(f"/api/v1/alerts/{world.red.pk}/acknowledge", {}, format="json")
    alice.post(f"/api/v1/alerts/{world.red.pk}/notes", {"text": "called"}, format="json")
    events = alice.get(f"/api/v1/patients/{world.pat.pk}/timeline").json()["events"]
    kinds = [e["kind"] for e in events]
    assert kinds[:2] == ["note", "alert_acknowledge"]
    assert {"alert", "advice", "device_added", "device_revoked", "consent_granted"} <= set(kinds)
    stamps = [e["at"] for e in events]
    assert stamps == sorted(stamps, reverse=True)


def test_the_queues_fast_rows_match_the_documented_alert_serializer(world, as_user):
    from api.serializers import AlertSerializer

    row = as_user(world.alice).get("/api/v1/alerts").json()["results"][0]
    alert = Alert.objects.select_related("patient").get(pk=row["id"])
    alert.is_quieted = False
    documented = AlertSerializer(alert, context={"contexts": {}}).data
    assert set(row) == set(documented)
    assert row == {**documented}
