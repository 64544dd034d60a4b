"""The mobile API's polish (issue 16, item 4): samples paging and rounding, today's partial
day, feedback sent once, the patient's own alert view, local times, Open mHealth, and the
samples.v1 JSON Schema."""

from __future__ import annotations

import time
import zoneinfo
from datetime import datetime, timedelta

import numpy as np
from django.utils import timezone

from alerts.models import Alert
from care.models import Patient
from coaching.models import ContextReport, Feedback
from tests.api.factories import put_samples


def _hour_ago_ms() -> int:
    """The start of the hour two hours ago, in epoch ms (inside the default last day)."""
    return (int(time.time()) // 3600 - 2) * 3_600_000


def test_samples_honour_limit_and_say_where_the_next_page_starts(world, as_user):
    t0 = _hour_ago_ms()
    put_samples(world.pat.pk, "heart_rate", t0 + np.arange(10) * 60_000, np.arange(10) + 60.0)
    client = as_user(world.pat)
    url = f"/api/v1/patients/{world.pat.pk}/samples?metric=heart_rate&resolution=raw&limit=4"
    body = client.get(url).json()
    assert [p["value"] for p in body["points"]] == [60, 61, 62, 63]
    assert body["limit"] == 4 and body["next_start"] == body["points"][-1]["time"].replace(
        ":03:00", ":04:00")
    r = client.get(f"/api/v1/patients/{world.pat.pk}/samples?metric=heart_rate&limit=0")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "limit"


def test_raw_samples_serve_up_to_the_limit_and_page_on_past_it(world, as_user):
    """More than 5,000 raw points under a limit of 10,000: all served (the store's read
    once stopped at 5,000 with no next page, silently dropping the rest)."""
    t0 = _hour_ago_ms() - 3_600_000
    put_samples(world.pat.pk, "heart_rate", t0 + np.arange(6000) * 1000, 60.0 + np.arange(6000) % 40)
    client = as_user(world.pat)
    url = f"/api/v1/patients/{world.pat.pk}/samples?metric=heart_rate&resolution=raw"
    body = client.get(f"{url}&limit=10000").json()
    assert len(body["points"]) == 6000 and body["next_start"] is None
    body = client.get(f"{url}&limit=5500").json()
    assert len(body["points"]) == 5500
    assert body["next_start"] is not None and body["next_start"] > body["points"][-1]["time"]


def test_samples_are_rounded_to_the_metrics_precision(world, as_user):
    t0 = _hour_ago_ms()
    put_samples(world.pat.pk, "heart_rate", t0 + np.arange(3) * 60_000, [61.23456, 62.0, 63.33333])
    put_samples(world.pat.pk, "steps", t0 + np.arange(3) * 60_000, [10, 11, 11])
    client = as_user(world.pat)
    base = f"/api/v1/patients/{world.pat.pk}/samples"
    raw = client.get(f"{base}?metric=heart_rate&resolution=raw").json()
    assert [p["value"] for p in raw["points"]] == [61.2, 62.0, 63.3] and raw["decimals"] == 1
    hourly = client.get(f"{base}?metric=heart_rate&resolution=1h").json()["points"][0]
    assert hourly["mean"] == 62.2 and hourly["max"] == 63.3
    steps = client.get(f"{base}?metric=steps&resolution=1h").json()
    assert steps["decimals"] == 0 and steps["points"][0]["mean"] == 11 and steps["points"][0]["sum"] == 32
    assert isinstance(steps["points"][0]["sum"], int)


def test_feedback_is_taken_once_per_recommendation_and_a_second_answers_409(world, as_user):
    client = as_user(world.pat)
    url = f"/api/v1/patients/{world.pat.pk}/recommendations/{world.advice.pk}/feedback"
    assert client.post(url, {"helpful": True, "context": ["travel"]}, format="json").status_code == 201
    r = client.post(url, {"helpful": False, "context": ["travel"]}, format="json")
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "(request)"
    assert Feedback.objects.count() == 1 and Feedback.objects.get().helpful is True
    assert ContextReport.objects.count() == 1


def test_feedback_with_context_already_reported_reuses_that_report(world, as_user):
    client = as_user(world.pat)
    now = timezone.now()
    reported = client.post(f"/api/v1/patients/{world.pat.pk}/context", {
        "tags": ["travel", "stress"], "starts_at": (now - timedelta(hours=30)).isoformat(),
        "ends_at": now.isoformat()}, format="json").json()
    url = f"/api/v1/patients/{world.pat.pk}/recommendations/{world.advice.pk}/feedback"
    r = client.post(url, {"helpful": False, "context": ["travel"]}, format="json")
    assert r.status_code == 201 and r.json()["context_report"] == reported["id"]
    assert ContextReport.objects.count() == 1


def _local_today(zone: str):
    return timezone.now().astimezone(zoneinfo.ZoneInfo(zone)).date()


def test_daily_flags_the_patients_local_today_as_partial(world, as_user):
    # Pacific/Kiritimati is UTC+14: its today is a day ahead of UTC for 14 hours a day,
    # so a default end of the UTC date would miss it then.
    Patient.objects.filter(pk=world.pat.pk).update(timezone="Pacific/Kiritimati")
    today = _local_today("Pacific/Kiritimati")
    body = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}/daily").json()
    assert body["end"] == today.isoformat() and body["today"] == today.isoformat()
    assert body["days"][-1]["day"] == today.isoformat() and body["days"][-1]["partial"] is True
    assert not any(d["partial"] for d in body["days"][:-1])


def test_the_chart_flags_todays_partial_day_in_each_daily_series(world, as_user):
    client = as_user(world.pat)
    this_hour = int(time.time()) // 3600 * 3_600_000  # today in UTC, whatever the hour
    put_samples(world.pat.pk, "steps", [this_hour - 86_400_000 * 2, this_hour], [500, 700])
    body = client.get(f"/api/v1/patients/{world.pat.pk}/chart?days=7").json()
    assert body["today"] == _local_today("UTC").isoformat()
    assert body["resting_hr"]["partial"] == [False] * 6 + [True]
    assert body["steps"]["partial"] == [False, True] and body["steps"]["value"] == [500, 700]


STAFF_ONLY = ("evidence", "threshold", "resolution_reason", "assigned_to", "verdict", "detector",
              "snoozed_until", "history", "notes", "baseline")


def test_the_patients_alert_view_shows_a_title_and_what_to_do_but_no_staff_notes_or_evidence(world, as_user):
    alice = as_user(world.alice)
    Alert.objects.filter(pk=world.red.pk).update(evidence={
        "peak_bpm": 142.0, "minutes": 12, "threshold_bpm": 120.0, "baseline_bpm": 64.0})
    alice.post(f"/api/v1/alerts/{world.red.pk}/notes", {"text": "sounds anxious, call back"}, format="json")
    alice.post(f"/api/v1/alerts/{world.red.pk}/snooze", {
        "until": (timezone.now() + timedelta(hours=4)).isoformat(), "reason": "waiting on labs"}, format="json")
    client = as_user(world.pat)
    listed = client.get(f"/api/v1/patients/{world.pat.pk}/alerts").json()["results"]
    detail = client.get(f"/api/v1/patients/{world.pat.pk}/alerts/{world.red.pk}").json()
    assert detail in listed
    assert detail["title"] == "Heart rate high at rest: 142 bpm for 12 minutes" and "rest" in detail["what_to_do"]
    assert detail["status"] == "in_review" and detail["status_text"] == "Your care team is looking at it."
    assert "120" not in detail["title"] + detail["what_to_do"]  # the care team's threshold
    text = str(listed).lower()
    for word in ("sounds anxious", "waiting on labs", "snoozed", "peak_bpm", *STAFF_ONLY):
        assert word not in text, word
    other = client.get(f"/api/v1/patients/{world.pat.pk}/alerts/{world.other_alert.pk}")
    assert other.status_code == 404


def test_patient_facing_answers_carry_the_patients_time_zone_and_local_times(world, as_user):
    Patient.objects.filter(pk=world.pat.pk).update(timezone="America/New_York")
    t0 = _hour_ago_ms()
    put_samples(world.pat.pk, "heart_rate", [t0], [70.0])
    client = as_user(world.pat)
    base = f"/api/v1/patients/{world.pat.pk}"
    samples = client.get(f"{base}/samples?metric=heart_rate&resolution=raw").json()
    point = samples["points"][0]
    assert samples["timezone"] == "America/New_York"
    local = datetime.fromisoformat(point["local_time"])
    assert local == datetime.fromisoformat(point["time"]) and local.utcoffset() in (
        timedelta(hours=-5), timedelta(hours=-4))
    alert = client.get(f"{base}/alerts/{world.red.pk}").json()
    assert alert["timezone"] == "America/New_York"
    assert datetime.fromisoformat(alert["opened_at_local"]).utcoffset() == local.utcoffset()
    advice = client.get(f"{base}/recommendations").json()["results"][0]
    assert advice["timezone"] == "America/New_York"
    assert datetime.fromisoformat(advice["created_at_local"]) == datetime.fromisoformat(
        advice["created_at"].replace("Z", "+00:00"))
    assert client.get(f"{base}/daily").json()["timezone"] == "America/New_York"
    assert client.get(f"{base}/chart?days=2").json()["timezone"] == "America/New_York"
