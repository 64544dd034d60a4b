"""Alert quality (alerts.quality, GET /api/v1/alerts/quality) against hand-made alerts:
alert-days per patient-month and the not-actionable share, per detector and team, over
30 and 90 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts import quality, states, workflow
from alerts.models import Alert, AlertAction

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


def _alert(patient, detector, start, end, verdict=None, world=None):
    a = Alert.objects.create(patient=patient, detector=detector, severity="yellow", window_start=start,
                             window_end=end, evidence={})
    if verdict:
        workflow.resolve(a, world.alice.user, "judged by hand", verdict)
        AlertAction.objects.filter(alert=a, action="resolve").update(at=NOW - timedelta(days=5))
    return a


def _rows(data, days):
    return {r["detector"]: r for r in data["rows"] if r["days"] == days}


def test_alert_days_per_patient_month_and_the_not_actionable_share_per_detector_over_30_and_90_days(world):
    d = lambda m, day, h: datetime(2026, m, day, h, tzinfo=UTC)  # noqa: E731
    _alert(world.pat, "hr_high_at_rest", d(6, 20, 10), d(6, 21, 9), states.NOT_ACTIONABLE, world)
    _alert(world.pat, "hr_high_at_rest", d(6, 21, 13), d(6, 21, 14), states.ACTIONABLE, world)  # same day
    _alert(world.pat, "nightsignal_rhr", d(6, 20, 1), d(6, 20, 6), states.UNSURE, world)
    _alert(world.pat2, "nightsignal_rhr", d(5, 1, 1), d(5, 3, 6))  # only in the 90 days
    _alert(world.revoked, "hr_high_at_rest", d(6, 20, 1), d(6, 25, 1))  # consent revoked: not counted
    _alert(world.pat, "wear_gap", d(7, 2, 1), d(7, 3, 1))  # after "now"
    data = quality.quality([world.team_a], now=NOW)
    # team A: pat and pat2 consent (revoked does not): 2 patient-months in 30 days, 6 in 90
    r30, r90 = _rows(data, 30), _rows(data, 90)
    assert set(r30) == {"hr_high_at_rest", "nightsignal_rhr", None}
    hr = r30["hr_high_at_rest"]
    assert (hr["patients"], hr["patient_months"], hr["alerts"], hr["alert_days"]) == (2, 2.0, 2, 2)
    assert (hr["alert_days_per_patient_month"], hr["judged"], hr["not_actionable_share"]) == (1.0, 2, 0.5)
    ns = r30["nightsignal_rhr"]
    assert (ns["alerts"], ns["alert_days"], ns["alert_days_per_patient_month"], ns["not_actionable_share"]) == (
        1, 1, 0.5, 0.0)
    every = r30[None]  # (pat, 20 Jun) and (pat, 21 Jun), whatever the detector
    assert (every["alerts"], every["alert_days"], every["alert_days_per_patient_month"]) == (3, 2, 1.0)
    assert (every["judged"], every["not_actionable"], every["not_actionable_share"]) == (3, 1, 0.333)
    assert (r90["nightsignal_rhr"]["alert_days"], r90["nightsignal_rhr"]["alert_days_per_patient_month"]) == (4, 0.667)
    assert (r90[None]["alert_days"], r90[None]["alert_days_per_patient_month"]) == (5, 0.833)
    assert r90["hr_high_at_rest"]["alert_days_per_patient_month"] == 0.333


def test_the_endpoint_serves_the_clinicians_own_teams_and_refuses_patients_and_strangers(world, as_user, api):
    # 02:00 UTC three days ago for 30 h: two UTC days whatever the hour the test runs at
    # (from now - 3 d, 30 h crossed a third midnight whenever the test ran after 18:00 UTC)
    start = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0) - timedelta(days=3)
    _alert(world.pat, "sleep_debt", start, start + timedelta(hours=30))
    body = as_user(world.alice).get("/api/v1/alerts/quality").json()
    assert body["periods"] == [30, 90] and {r["team"]["name"] for r in body["rows"]} == {"Cardiology A"}
    row = next(r for r in body["rows"] if r["days"] == 30 and r["detector"] == "sleep_debt")
    assert (row["alerts"], row["alert_days"], row["not_actionable_share"]) == (1, 2, None)
    assert {r["team"]["name"] for r in as_user(world.bob).get("/api/v1/alerts/quality").json()["rows"]} == {
        "Sleep clinic B"}
    assert as_user(world.pat).get("/api/v1/alerts/quality").status_code == 403
    anonymous = api.get("/api/v1/alerts/quality")
    assert anonymous.status_code == 401 and set(anonymous.json()) == {"errors"}


def test_the_quality_endpoint_and_the_verdict_are_in_the_openapi_schema(api):
    schema = api.get("/api/schema/?format=json").json()
    get = schema["paths"]["/api/v1/alerts/quality"]["get"]
    ref = get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    rows = schema["components"]["schemas"][ref]["properties"]["rows"]["items"]["$ref"].rsplit("/", 1)[1]
    assert {"alert_days_per_patient_month", "not_actionable_share", "detector", "team", "days"} <= set(
        schema["components"]["schemas"][rows]["properties"])
    resolve = schema["paths"]["/api/v1/alerts/{alert_id}/resolve"]["post"]["requestBody"]["content"]
    body = resolve["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "verdict" in schema["components"]["schemas"][body]["properties"]
