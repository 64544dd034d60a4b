"""Daily features from one hourly intermediate: what counts as rest, what is missing."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from forecasting.features import (
    FEATURES,
    daily_features,
    features_from_frames,
    hourly_from_frame,
    make_histories,
)


def frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (metric, time, end or None, value, label)."""
    out = pd.DataFrame(rows, columns=["metric", "time", "end", "value", "label"])
    out["time"] = pd.to_datetime(out["time"], utc=True)
    out["end"] = pd.to_datetime(out["end"], utc=True)
    out["value"] = out["value"].astype(float)
    return out


def minutes(metric: str, start: str, n: int, value: float, step_end: bool = False) -> list[tuple]:
    t0 = pd.Timestamp(start, tz="UTC")
    return [(metric, t0 + pd.Timedelta(minutes=i), t0 + pd.Timedelta(minutes=i + 1) if step_end else None,
             value, None) for i in range(n)]


def test_resting_heart_rate_is_the_mean_over_night_hours_without_steps():
    rows = (minutes("heart_rate", "2026-03-02 01:00", 60, 52)   # still: counts
            + minutes("heart_rate", "2026-03-02 02:00", 60, 56)  # still: counts
            + minutes("heart_rate", "2026-03-02 03:00", 60, 90)  # walked: does not count
            + minutes("steps", "2026-03-02 03:10", 5, 80, step_end=True)
            + minutes("heart_rate", "2026-03-02 12:00", 300, 75))  # daytime: not rest
    day = daily_features(hourly_from_frame("p", frame(rows)))["p"].iloc[0]
    assert day["resting_hr"] == pytest.approx(54.0)
    assert day["steps"] == 400
    assert day["active_minutes"] == 0  # 80 steps a minute is not brisk


def test_a_noisy_still_hour_is_not_rest():
    rng = np.random.default_rng(0)
    rows = minutes("heart_rate", "2026-03-02 01:00", 60, 55) + minutes("heart_rate", "2026-03-02 02:00", 60, 55)
    noisy = minutes("heart_rate", "2026-03-02 03:00", 60, 0)
    noisy = [(m, t, e, float(v), lab) for (m, t, e, _, lab), v in zip(noisy, rng.uniform(80, 160, 60), strict=True)]
    day = daily_features(hourly_from_frame("p", frame(rows + noisy)))["p"].iloc[0]
    assert day["resting_hr"] == pytest.approx(55.0)


def test_a_day_without_data_is_missing_not_zero():
    rows = (minutes("heart_rate", "2026-03-02 00:00", 600, 60) + minutes("steps", "2026-03-02 10:00", 3, 120, True)
            + minutes("heart_rate", "2026-03-04 00:00", 600, 62) + minutes("steps", "2026-03-04 10:00", 3, 120, True))
    days = daily_features(hourly_from_frame("p", frame(rows)))["p"]
    assert list(days.index.strftime("%d")) == ["02", "03", "04"]
    assert days.loc["2026-03-03"].isna().all()
    assert days.loc["2026-03-02", "steps"] == 360 and days.loc["2026-03-02", "active_minutes"] == 3
    assert np.isnan(days.loc["2026-03-02", "sleep_minutes"])  # no sleep recorded: unknown
    assert list(days.columns) == list(FEATURES)


def test_sleep_counts_for_the_morning_it_ends_and_excludes_awake_time():
    rows = [("sleep_stage", "2026-03-02 23:00", "2026-03-03 01:00", np.nan, "light"),
            ("sleep_stage", "2026-03-03 01:00", "2026-03-03 02:00", np.nan, "deep"),
            ("sleep_stage", "2026-03-03 02:00", "2026-03-03 02:20", np.nan, "awake"),
            ("sleep_stage", "2026-03-03 02:20", "2026-03-03 06:20", np.nan, "rem")]
    days = daily_features(hourly_from_frame("p", frame(rows)))["p"]
    assert days.loc["2026-03-03", "sleep_minutes"] == 120 + 60 + 240
    assert days.loc["2026-03-03", "sleep_awake"] == 20
    assert days.loc["2026-03-03", "sleep_deep"] == 60


def test_local_days_follow_the_patients_time_zone():
    rows = minutes("heart_rate", "2026-03-02 06:00", 180, 50)  # 01:00-04:00 in New York
    utc = daily_features(hourly_from_frame("p", frame(rows)))["p"]
    ny = daily_features(hourly_from_frame("p", frame(rows)), {"p": "America/New_York"})["p"]
    assert np.isnan(utc["resting_hr"].iloc[0])  # 06:00-09:00 UTC is not night
    assert ny["resting_hr"].iloc[0] == pytest.approx(50.0)


def test_the_real_recordings_give_masked_resting_heart_rate_series(shared_data):
    from ingest.readers import load_frames

    files = sorted((shared_data / "stanford-covid19-phase1").glob("AV2GF3B_*.csv.zip"))
    feats = features_from_frames(load_frames(files))
    days = feats["AV2GF3B"]
    assert len(days) >= 80
    rhr = days["resting_hr"]
    assert 20 <= rhr.notna().sum() < len(days)  # real gaps stay gaps
    assert rhr.dropna().between(40, 100).all()
    series = make_histories(feats, "resting_hr")
    assert np.isnan(series["AV2GF3B"].y).any()


def _reference_split(table: pd.DataFrame, calendar: pd.DatetimeIndex | None = None) -> dict:
    """The per-patient reindex that ``split_by_patient`` replaces (slow, plain)."""
    out = {}
    for patient, part in table.groupby(level=0, sort=True):
        part = part.droplevel(0).sort_index()
        cal = calendar if calendar is not None else pd.date_range(part.index.min(), part.index.max(), freq="D")
        part = part.reindex(cal).reindex(columns=list(FEATURES)).astype(float)
        part.index.name = "date"
        out[patient] = part
    return out


def test_splitting_by_patient_fills_each_calendar_like_a_reindex_per_patient():
    from forecasting.features import daily_table, split_by_patient

    hr = (minutes("heart_rate", "2026-03-02 01:00", 360, 55) + minutes("heart_rate", "2026-03-05 01:00", 360, 60)
          + minutes("heart_rate", "2026-03-09 08:00", 420, 70))
    steps = minutes("steps", "2026-03-03 12:00", 30, 110, step_end=True)
    parts = [hourly_from_frame("b", frame(hr)), hourly_from_frame("a", frame(hr[360:] + steps))]
    from forecasting.features import Hourly

    table = daily_table(Hourly.concat(parts), {"a": "America/New_York", "b": "Asia/Tokyo"})
    got = split_by_patient(table)
    want = _reference_split(table)
    assert list(got) == ["a", "b"]
    for patient in want:  # gaps (days without data) are NaN rows inside the calendar
        pd.testing.assert_frame_equal(got[patient], want[patient], check_freq=False)
    assert got["b"]["resting_hr"].isna().sum() >= 2
    first, last = date(2026, 3, 4), date(2026, 3, 8)
    window = split_by_patient(table, first, last)  # the calendar daily_from_db builds
    calendar = pd.date_range(pd.Timestamp(first), pd.Timestamp(last), freq="D", name="date")
    for patient, frame_ in _reference_split(table, calendar).items():
        pd.testing.assert_frame_equal(window[patient], frame_)
