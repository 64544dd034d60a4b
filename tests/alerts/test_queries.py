"""One definition of "active" (``Alert.objects.active()``), and everyone uses it: the
care team's queue, the patient list's counts and the coaching engine."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from alerts import states
from alerts.models import Alert
from coaching import engine
from tests.api.factories import make_alert


def _statuses(world):
    """The world's two alerts of Pat, plus one of each other kind."""
    past = make_alert(world.pat, "sleep_debt", "yellow", 200, status=states.SNOOZED,
                      snoozed_until=timezone.now() - timedelta(minutes=1))
    future = make_alert(world.pat, "cusum_rhr", "yellow", 210, status=states.SNOOZED,
                        snoozed_until=timezone.now() + timedelta(hours=2))
    resolved = make_alert(world.pat, "wear_gap", "info", 220, status=states.RESOLVED)
    escalated = make_alert(world.pat, "hr_low_at_rest", "yellow", 230, status=states.ESCALATED)
    return past, future, resolved, escalated


def test_active_means_needing_attention_now_including_an_ended_snooze(world):
    past, future, resolved, escalated = _statuses(world)
    active = set(Alert.objects.filter(patient=world.pat).active().values_list("pk", flat=True))
    assert active == {world.red.pk, world.yellow.pk, past.pk, escalated.pk}
    later = timezone.now() + timedelta(hours=3)
    assert future.pk in set(Alert.objects.active(at=later).values_list("pk", flat=True))


def test_the_queue_the_patient_list_and_the_coaching_engine_count_the_same_active_alerts(world, as_user):
    _statuses(world)
    expected = set(Alert.objects.filter(patient=world.pat).active().values_list("pk", flat=True))
    alice = as_user(world.alice)
    queue = alice.get(f"/api/v1/alerts?status=active&patient={world.pat.pk}&include_quieted=true").json()
    assert {a["id"] for a in queue["results"]} == expected
    patients = {p["id"]: p for p in alice.get("/api/v1/patients").json()["results"]}
    assert patients[world.pat.pk]["open_alerts"] == len(expected)
    mine = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/alerts?status=active").json()
    assert {a["id"] for a in mine["results"]} == expected
    coached = engine.gather(world.pat.pk, timezone.now().date()).open_alerts
    assert {a.id for a in coached} == expected


def test_the_openapi_enums_are_the_defined_statuses(api):
    schema = api.get("/api/schema/?format=json").json()
    queue = next(p for p in schema["paths"]["/api/v1/alerts"]["get"]["parameters"] if p["name"] == "status")
    assert sorted(queue["schema"]["enum"]) == sorted(states.STATUS_FILTERS)
    alert_status = schema["components"]["schemas"]["AlertStatusEnum"]["enum"]
    assert sorted(alert_status) == sorted(states.STATUSES)


def test_the_dashboards_status_filter_offers_the_defined_statuses(world):
    import re

    from django.test import Client

    from tests.api.factories import PASSWORD

    client = Client()
    assert client.login(username=world.alice.user.username, password=PASSWORD)
    page = client.get("/dashboard/").content.decode()
    select = page[page.index('<select name="status">'):]
    select = select[:select.index("</select>")]
    assert re.findall(r'<option value="([a-z]+)"', select) == list(states.STATUS_FILTERS)
