"""Daily series files: the LifeSnaps reader, the split by person, the robust
combination forecaster, and the backtest command's promotion mark decided on the
development part."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from forecasting.daily_files import in_test_part, read_lifesnaps_daily, split_by_person
from forecasting.forecasters import History, make
from forecasting.forecasters.combo import robust_clean
from tests.forecasting.conftest import SHARED

COLUMNS = ("id,date,resting_hr,bpm,nremhr,rmssd,steps,minutesAsleep,sleep_duration,sleep_efficiency,"
           "lightly_active_minutes,moderately_active_minutes,very_active_minutes,sedentary_minutes")


def _csv(path, people: int = 12, days: int = 60) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for pid in range(1, people + 1):
        for d in pd.date_range("2021-06-01", periods=days, freq="D"):
            if rng.random() < 0.1:
                continue  # a day not worn: no row
            rhr = 55 + pid + 3 * np.sin(2 * np.pi * d.day_of_week / 7) + rng.normal(0, 0.5)
            rows.append(f"{pid},{d.date()},{rhr},70,55,40,8000,420,1,90,100,20,10,600")
    path.write_text(COLUMNS + "\n" + "\n".join(rows) + "\n")


def test_the_reader_gives_each_person_a_complete_calendar_with_missing_days_as_nan(tmp_path):
    _csv(tmp_path / "lifesnaps_daily.csv")
    feats = read_lifesnaps_daily(tmp_path)
    assert len(feats) == 12
    one = feats["lifesnaps-1"]
    assert (one.index.to_series().diff().dropna() == pd.Timedelta(days=1)).all()
    assert one["resting_hr"].isna().any() and one["hr_range"].isna().all()
    assert one["active_minutes"].dropna().eq(20 + 2 * 10).all()
    assert one["sleep_minutes"].dropna().eq(420).all()


def test_the_reader_names_a_file_that_is_not_a_lifesnaps_export(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lacks"):
        read_lifesnaps_daily(tmp_path / "x.csv")


def test_the_split_by_person_is_fixed_disjoint_and_about_a_third_test():
    people = {f"lifesnaps-{i}": i for i in range(1, 301)}
    dev, test = split_by_person(people, "dev"), split_by_person(people, "test")
    assert not set(dev) & set(test) and len(dev) + len(test) == 300
    assert 0.25 < len(test) / 300 < 0.42
    assert all(in_test_part(p) for p in test)


def test_the_real_lifesnaps_export_reads_into_71_people(shared_data):
    feats = read_lifesnaps_daily(SHARED / "lifesnaps-daily")
    assert len(feats) == 71
    assert sum(int(f["resting_hr"].notna().sum()) for f in feats.values()) == 4422


def test_a_far_outlying_night_is_left_out_of_the_combined_forecast():
    rng = np.random.default_rng(2)
    y = 60 + rng.normal(0, 1, 60)
    spiked = y.copy()
    spiked[-1] = 130.0  # a sensor-noise night
    assert np.isnan(robust_clean(spiked, 4.0)[-1]) and not np.isnan(robust_clean(y, 4.0)).any()
    start = np.datetime64("2026-01-01")
    pred = make("combo").predict([History(spiked, start)], 7)
    assert np.all(np.abs(pred.mean - 60) < 3)
    assert np.all(pred.p10 <= pred.mean) and np.all(pred.mean <= pred.p90)


def test_the_backtest_command_marks_the_model_the_dev_part_promotes(tmp_path, capsys):
    _csv(tmp_path / "lifesnaps_daily.csv", people=15)
    call_command("backtest", "--daily", str(tmp_path), "--part", "test", "--models", "naive,seasonal_naive",
                 "--json", "--pretrain-sim", "0")
    out = capsys.readouterr().out
    data = json.loads(out)  # only the JSON on stdout: progress goes to stderr
    marked = [m["name"] for m in data["models"] if m["promoted"]]
    # A strong weekly cycle: the seasonal naive forecast wins on the development part.
    assert marked == ["seasonal_naive"] and data["promotion_decided_on"] == "dev"
    assert len(data["models"][0]["coverage_80_by_horizon"]) == 14
