"""One daily-features function (forecasting.rollups.daily_from_db): the chart, /daily,
the coaching engine and the forecasters' features give the same numbers for a patient."""

from __future__ import annotations

import math
import zoneinfo
from datetime import UTC, datetime, timedelta

import numpy as np
from django.utils import timezone

from coaching import engine
from forecasting import service
from tests.api.factories import day_ms, minute_heart_rate, put_samples

DAYS = 30


def _rounded(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 1)


def test_the_chart_daily_advice_and_forecast_features_agree_on_resting_heart_rate(world, as_user):
    pat = world.pat
    pat.timezone = "America/New_York"  # local days that are not UTC days
    pat.save(update_fields=["timezone"])
    minute_heart_rate(pat.pk, days=DAYS + 5, resting=58.0, last_days_resting={0: 66.0, -1: 67.0})
    walk = day_ms(-3) + 15 * 3_600_000 + 60_000 * np.arange(30)
    put_samples(pat.pk, "steps", walk, [110] * 30, ends=(walk + 60_000).tolist())
    today = timezone.now().astimezone(zoneinfo.ZoneInfo(pat.timezone)).date()
    first = today - timedelta(days=DAYS - 1)
    alice = as_user(world.alice)

    chart = alice.get(f"/api/v1/patients/{pat.pk}/chart?days={DAYS}").json()["resting_hr"]
    from_chart = {datetime.fromtimestamp(t, UTC).date(): v for t, v in zip(chart["t"], chart["value"], strict=True)}
    daily = alice.get(f"/api/v1/patients/{pat.pk}/daily?start={first}&end={today}").json()["days"]
    from_daily = {datetime.fromisoformat(d["day"]).date(): d["resting_hr"] for d in daily}
    feats = service.patient_features([pat], today, DAYS)[pat.pk]
    from_forecasting = {stamp.date(): _rounded(v) for stamp, v in feats["resting_hr"].items()}
    advised = {d.day: d.resting_hr for d in engine.gather(pat.pk, today).days if d.day >= first}

    assert list(from_chart) == list(from_daily) == list(from_forecasting) == list(advised)
    assert from_chart == from_daily == from_forecasting == advised
    assert sum(v is not None for v in from_chart.values()) >= DAYS - 3
    active = {datetime.fromisoformat(d["day"]).date(): d["active_minutes"] for d in daily}
    assert active == {stamp.date(): _rounded(v) for stamp, v in feats["active_minutes"].items()}
