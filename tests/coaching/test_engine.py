"""The coaching engine against the real database: features from the rollups, advice
stored once a day, feedback honoured, Celery tasks daily and when an alert opens."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from alerts.models import Alert
from care.models import Assignment, CareTeam, Clinician, Consent, Patient
from coaching import engine, tasks
from coaching.models import Feedback, Recommendation
from tests.api.factories import day_ms, make_alert, minute_heart_rate, put_samples


def _short_nights(patient_id: int, nights: int = 7, hours: float = 5.5):
    starts = [day_ms(-k) - 2 * 3_600_000 for k in range(nights)]
    put_samples(patient_id, "sleep_stage", starts, None,
                ends=[s + int(hours * 3_600_000) for s in starts], labels=["light"] * nights)


@pytest.fixture
def quiet_world(world):
    """The world without its open alerts, so only the data speaks."""
    Alert.objects.all().delete()
    Recommendation.objects.all().delete()
    return world


def test_features_read_from_the_rollups_drive_stored_advice_with_reasons(quiet_world):
    w = quiet_world
    # Three high days: whatever the hour, the last two days with data are high.
    minute_heart_rate(w.pat.pk, days=30, resting=58.0, last_days_resting={0: 69.0, -1: 69.0, -2: 69.0})
    _short_nights(w.pat.pk)
    made = engine.recommend(w.pat.pk)
    by_rule = {r.rule: r for r in made}
    assert set(by_rule) == {"resting_hr_above_baseline", "sleep_short"}
    rhr = by_rule["resting_hr_above_baseline"]
    assert rhr.reason["signals"][-1]["value"] == pytest.approx(69.0, abs=1.0)
    assert rhr.reason["signals"][-1]["baseline"] == pytest.approx(58.0, abs=1.0)
    assert by_rule["sleep_short"].reason["signals"][0]["value"] == 330
    assert by_rule["sleep_short"].guideline["source"].startswith("AASM")


def test_running_twice_a_day_keeps_one_recommendation_per_rule(quiet_world):
    _short_nights(quiet_world.pat.pk)
    engine.recommend(quiet_world.pat.pk)
    engine.recommend(quiet_world.pat.pk)
    assert Recommendation.objects.filter(patient=quiet_world.pat, rule="sleep_short").count() == 1


def test_advice_the_patient_dismissed_does_not_come_back_the_next_day(quiet_world, as_user):
    w = quiet_world
    _short_nights(w.pat.pk)
    rec = engine.recommend(w.pat.pk)[0]
    r = as_user(w.pat).post(f"/api/v1/patients/{w.pat.pk}/recommendations/{rec.pk}/feedback",
                            {"dismissed": True}, format="json")
    assert r.status_code == 201
    tomorrow = timezone.now().date() + timedelta(days=1)
    assert "sleep_short" not in [x.rule for x in engine.recommend(w.pat.pk, today=tomorrow)]
    Feedback.objects.update(created_at=timezone.now() - timedelta(days=8))
    assert "sleep_short" in [x.rule for x in engine.recommend(w.pat.pk, today=timezone.now().date())]


def test_yesterdays_advice_expires_when_todays_is_made(quiet_world):
    _short_nights(quiet_world.pat.pk)
    yesterday = timezone.now().date() - timedelta(days=1)
    engine.recommend(quiet_world.pat.pk, today=yesterday)
    engine.recommend(quiet_world.pat.pk)
    statuses = dict(Recommendation.objects.filter(patient=quiet_world.pat).values_list("day", "status"))
    assert statuses == {yesterday: "expired", timezone.now().date(): "active"}


def test_an_opened_alert_brings_care_team_advice_once_through_the_sweep(quiet_world):
    w = quiet_world
    alert = make_alert(w.pat, "hr_high_at_rest", "red", 5)
    cache.delete(f"coaching:alert:{alert.pk}")
    assert tasks.sweep_new_alerts() == 1
    assert tasks.sweep_new_alerts() == 0  # claimed once
    rec = Recommendation.objects.get(patient=w.pat, rule="open_alert_care_team")
    assert rec.alert_id == alert.pk and rec.priority == "high" and rec.trigger == "alert"
    cache.delete(f"coaching:alert:{alert.pk}")


def test_the_daily_task_fans_out_one_task_per_active_patient(quiet_world, monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.recommend_for_patient, "delay", lambda pk, trigger: sent.append((pk, trigger)))
    Patient.objects.filter(pk=quiet_world.other.pk).update(active=False)
    assert tasks.daily() == Patient.objects.filter(active=True).count()
    assert quiet_world.other.pk not in [pk for pk, _ in sent] and {t for _, t in sent} == {"daily"}


def test_forecasts_feed_the_engine_when_the_forecasting_app_has_made_some(quiet_world):
    from forecasting.models import Forecast as model
    from forecasting.models import ModelVersion

    w = quiet_world
    minute_heart_rate(w.pat.pk, days=20, resting=58.0)
    mv = ModelVersion.objects.create(metric="resting_hr", kind="ets", version=1)
    today = timezone.now().date()
    for d in range(1, 8):
        model.objects.create(patient=w.pat, metric="resting_hr", issued_on=today,
                             target_date=today + timedelta(days=d), horizon_days=d,
                             mean=66.0, p10=62.0, p50=66.0, p90=70.0, model_version=mv)
    assert "forecast_resting_hr_rising" in [r.rule for r in engine.recommend(w.pat.pk)]


def test_seed_demo_creates_the_demo_team_and_logins_and_is_idempotent(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    Patient.objects.create(display_name="Simulated 1")
    call_command("seed_demo", "--no-coaching")
    call_command("seed_demo", "--no-coaching", "--create-patients", "3")
    team = CareTeam.objects.get(name="Demo care team")
    assert Clinician.objects.get(user__username="clinician").user.check_password("demo-clinician")
    assert Assignment.objects.filter(team=team).count() == 3
    assert Consent.objects.filter(team=team, revoked_at__isnull=True).count() == 3
    assert all(p.user.check_password("demo-patient") for p in Patient.objects.all())


def test_active_minutes_count_brisk_walking_and_double_vigorous_activity(quiet_world):
    from coaching.features import load_days

    w = quiet_world
    t = day_ms(-1) + 10 * 3_600_000 + np.arange(20) * 60_000
    put_samples(w.pat.pk, "steps", t, [120] * 20, ends=(t + 60_000).tolist())
    start = day_ms(-1) + 15 * 3_600_000
    put_samples(w.pat.pk, "activity", [start], [300.0], ends=[start + 25 * 60_000], labels=["running"], levels=[3])
    day = load_days(w.pat.pk, timezone.now().date() - timedelta(days=1), timezone.now().date() - timedelta(days=1))[0]
    assert day.active_minutes == 50.0  # 25 vigorous minutes count as 50; the walk's 20 are fewer
    assert day.steps == 2400
