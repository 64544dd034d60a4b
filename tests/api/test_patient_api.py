"""The patient side: signing in, profile, devices, consents, daily summaries, the chart,
advice with feedback, and rate limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from care.models import Device
from coaching.models import ContextReport, Feedback, Recommendation
from tests.api.factories import PASSWORD, day_ms, minute_heart_rate, put_samples


def test_a_patient_signs_in_with_a_password_and_gets_a_token_for_the_app(world, api):
    r = api.post("/api/v1/auth/token", {"username": "pat", "password": PASSWORD}, format="json")
    assert r.status_code == 200
    body = r.json()
    assert body["me"]["role"] == "patient" and body["me"]["patient_id"] == world.pat.pk
    api.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert api.get("/api/v1/me").json()["username"] == "pat"
    assert api.post("/api/v1/auth/logout").status_code == 204
    assert api.get("/api/v1/me").status_code in (401, 403)


def test_passwords_are_stored_hashed(world):
    assert world.pat.user.password != PASSWORD and world.pat.user.check_password(PASSWORD)


def test_repeated_failed_sign_ins_lock_the_username_out_even_with_the_right_password(world, api, settings):
    settings.LOGIN_MAX_FAILURES_PER_USER = 3
    for _ in range(3):
        r = api.post("/api/v1/auth/token", {"username": "pat", "password": "wrong"}, format="json")
        assert r.status_code == 400
    r = api.post("/api/v1/auth/token", {"username": "pat", "password": PASSWORD}, format="json")
    assert r.status_code == 429 and r["Retry-After"]
    assert r.json()["errors"][0]["reason"].startswith("too many failed sign-ins")


def test_the_api_rate_limit_answers_429_with_retry_after(world, as_user, settings):
    settings.API_RATE_LIMIT_PER_MIN = 3
    client = as_user(world.pat)
    codes = [client.get("/api/v1/me").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = client.get("/api/v1/me")
    assert int(r["Retry-After"]) > 0 and set(r.json()) == {"errors"}


def test_a_patient_updates_their_profile_and_a_bad_time_zone_is_refused(world, as_user):
    client = as_user(world.pat)
    url = f"/api/v1/patients/{world.pat.pk}"
    assert client.patch(url, {"timezone": "Europe/Paris"}, format="json").json()["timezone"] == "Europe/Paris"
    r = client.patch(url, {"timezone": "Mars/Olympus"}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "timezone"


def test_a_new_device_token_is_shown_once_and_can_push_until_it_is_revoked(world, as_user):
    client = as_user(world.pat)
    r = client.post(f"/api/v1/patients/{world.pat.pk}/devices", {"name": "ring"}, format="json")
    assert r.status_code == 201
    token = r.json()["token"]
    assert token.startswith("hsd_")
    listed = client.get(f"/api/v1/patients/{world.pat.pk}/devices").json()
    assert all("token" not in d for d in listed) and token not in str(listed)
    device = Device.objects.get(pk=r.json()["id"])
    push = APIClient()
    push.credentials(HTTP_AUTHORIZATION=f"Device {token}")
    assert push.post("/api/v1/ingest/batches", b"{", content_type="application/json").status_code == 400
    client.post(f"/api/v1/patients/{world.pat.pk}/devices/{device.pk}/revoke")
    assert push.post("/api/v1/ingest/batches", b"{", content_type="application/json").status_code == 401


def test_granting_consent_twice_keeps_one_active_consent(world, as_user):
    client = as_user(world.pat)
    url = f"/api/v1/patients/{world.pat.pk}/consents"
    assert client.post(url, {"team": world.team_b.pk}, format="json").status_code == 201
    assert client.post(url, {"team": world.team_b.pk}, format="json").status_code == 200
    active = [c for c in client.get(url).json() if c["active"]]
    assert sorted(c["team_name"] for c in active) == ["Cardiology A", "Sleep clinic B"]


def test_granting_consent_without_an_assignment_gives_that_team_no_access(world, as_user):
    as_user(world.pat).post(f"/api/v1/patients/{world.pat.pk}/consents", {"team": world.team_b.pk}, format="json")
    assert as_user(world.bob).get(f"/api/v1/patients/{world.pat.pk}").status_code == 404


def test_daily_summaries_give_resting_heart_rate_steps_sleep_and_the_baseline(world, as_user):
    minute_heart_rate(world.pat.pk, days=10, resting=58.0)
    t = day_ms(-1) + 9 * 3_600_000 + 60_000 * __import__("numpy").arange(30)
    put_samples(world.pat.pk, "steps", t, [110] * 30, ends=(t + 60_000).tolist())
    night = day_ms(-1) - 2 * 3_600_000
    put_samples(world.pat.pk, "sleep_stage", [night], None, ends=[night + 7 * 3_600_000], labels=["light"])
    body = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/daily").json()
    assert len(body["days"]) == 30
    yesterday = body["days"][-2]
    assert yesterday["resting_hr"] == pytest.approx(58.0, abs=1.0)
    assert yesterday["steps"] == 3300 and yesterday["active_minutes"] == 30
    assert yesterday["sleep_minutes"] == 420
    assert body["baseline"]["median"] == pytest.approx(58.0, abs=1.0) and body["baseline"]["days"] >= 7


def test_daily_summaries_refuse_a_reversed_or_too_long_range(world, as_user):
    client = as_user(world.pat)
    url = f"/api/v1/patients/{world.pat.pk}/daily"
    assert client.get(url, {"start": "2026-02-01", "end": "2026-01-01"}).status_code == 400
    assert client.get(url, {"start": "2020-01-01", "end": "2026-01-01"}).status_code == 400
    assert client.get(url, {"start": "yesterday"}).json()["errors"][0]["field"] == "start"


def test_the_chart_serves_hourly_heart_rate_resting_rate_against_baseline_and_alert_markers(world, as_user):
    minute_heart_rate(world.pat.pk, days=35, resting=60.0, last_days_resting={0: 71.0, -1: 70.0})
    body = as_user(world.alice).get(f"/api/v1/patients/{world.pat.pk}/chart?days=30").json()
    hr = body["heart_rate"]
    assert len(hr["t"]) == len(hr["mean"]) >= 29 * 24
    assert all(lo <= m <= hi for lo, m, hi in zip(hr["min"], hr["mean"], hr["max"], strict=True))
    rest = body["resting_hr"]
    assert len(rest["t"]) == len(rest["value"]) == len(rest["baseline"]) == 30
    known = [v for v in rest["value"] if v is not None]  # today may hold no full hour yet
    assert known[-1] == pytest.approx(70.5, abs=1.5)
    assert rest["baseline"][-1] == pytest.approx(60.0, abs=1.0)
    assert rest["baseline_low"][-1] < rest["baseline"][-1] < rest["baseline_high"][-1]
    assert {a["id"] for a in body["alerts"]} == {world.red.pk, world.yellow.pk}


def test_the_chart_range_is_bounded(world, as_user):
    r = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/chart?days=400")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "days"


def test_advice_lists_most_urgent_first_with_its_reason_guideline_and_disclaimer(world, as_user):
    Recommendation.objects.create(patient=world.pat, rule="open_alert_care_team", category="care_team",
                                  priority="high", title="Your care team is looking", message="m",
                                  reason={"summary": "red alert"}, guideline={"source": "care"},
                                  day=timezone.now().date())
    results = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/recommendations").json()["results"]
    assert [r["priority"] for r in results] == ["high", "medium"]
    first = results[0]
    assert first["reason"] and first["guideline"] and first["category"] == "care_team"
    assert "not a diagnosis" in first["disclaimer"]


def test_dismissing_advice_takes_it_off_the_list_and_context_in_feedback_is_kept(world, as_user):
    client = as_user(world.pat)
    url = f"/api/v1/patients/{world.pat.pk}/recommendations/{world.advice.pk}/feedback"
    r = client.post(url, {"dismissed": True, "helpful": False, "context": ["travel", "stress"]}, format="json")
    assert r.status_code == 201 and r.json()["context_report"]
    assert Recommendation.objects.get(pk=world.advice.pk).status == "dismissed"
    assert client.get(f"/api/v1/patients/{world.pat.pk}/recommendations").json()["count"] == 0
    assert Feedback.objects.get().helpful is False
    assert ContextReport.objects.get().tags == ["stress", "travel"]


def test_empty_feedback_and_unknown_context_are_refused(world, as_user):
    url = f"/api/v1/patients/{world.pat.pk}/recommendations/{world.advice.pk}/feedback"
    client = as_user(world.pat)
    assert client.post(url, {}, format="json").status_code == 400
    r = client.post(url, {"context": ["astrology"]}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "context.0"


def test_a_context_report_cannot_end_before_it_starts(world, as_user):
    now = timezone.now()
    r = as_user(world.pat).post(f"/api/v1/patients/{world.pat.pk}/context", {
        "tags": ["illness"], "starts_at": now.isoformat(), "ends_at": (now - timedelta(hours=1)).isoformat()},
        format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "ends_at"
