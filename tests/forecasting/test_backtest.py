"""The backtest and its scores, on series small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.backtest import backtest, mase_scale, origins_for, score
from forecasting.forecasters import History, make
from forecasting.forecasters.baselines import seasonal_naive_forecast


def test_the_mase_scale_is_the_in_sample_mae_of_the_weekly_naive_forecast():
    y = np.array([1, 2, 3, 4, 5, 6, 7, 9, 9, 13.0])  # lag-7 differences: 8, 7, 10
    assert mase_scale(y) == pytest.approx((8 + 7 + 10) / 3)
    y[8] = np.nan  # a missing day drops its pair; fewer than three pairs give no scale
    assert np.isnan(mase_scale(y))
    y = np.r_[y, 12.0]  # adds the pair 12 - 4 = 8
    assert mase_scale(y) == pytest.approx((8 + 10 + 8) / 3)


def test_scores_leave_missing_outcomes_out_and_match_a_hand_computation():
    truth = np.array([[11.0], [np.nan], [20.0]])
    fc = np.zeros((3, 1, 4))
    fc[:, 0] = [[10, 9, 10, 12], [50, 40, 50, 60], [16, 15, 16, 17]]  # mean, p10, p50, p90
    out = score(truth, fc, ref=np.array([12.0, 1.0, 15.0]), scale=np.array([2.0, 2.0, 4.0]), k=0)
    assert out["n"] == 2
    assert out["mae"] == pytest.approx((1 + 4) / 2)
    assert out["mase"] == pytest.approx((1 / 2 + 4 / 4) / 2)
    assert out["coverage_80"] == pytest.approx(0.5)  # 11 in [9, 12]; 20 not in [15, 17]
    assert out["within_3bpm_7d"] == pytest.approx(0.5)
    # Direction from the level: 12 -> 11 is down, forecast 10 is down (right);
    # 15 -> 20 is up, forecast 16 is up (right).
    assert out["direction_accuracy"] == pytest.approx(1.0)


def test_a_rolling_origin_backtest_of_the_naive_forecast_on_a_straight_line():
    y = np.arange(1, 13, dtype=float)  # 1..12
    series = {"a": History(y, np.datetime64("2026-01-05"))}
    assert origins_for(series["a"], 2, 9, 0.25, 1).tolist() == [9, 10]
    result = backtest({"naive": make("naive")}, series, "resting_hr", horizon=2, headline=2,
                      min_history=9, test_fraction=0.25)
    # Origin 9 (value 10) forecasts 10 for day 11 (value 12); origin 10's day 12 is unknown.
    s = result.scores("naive")
    assert s["n"] == 1
    assert s["mae"] == pytest.approx(2.0)
    assert s["mase"] == pytest.approx(2.0 / 7.0)  # in-sample lag-7 differences are all 7
    # Random-walk sd from 1-day differences (all 1): 80% interval 10 +- 1.2816 * sqrt(2).
    assert s["coverage_80"] == 0.0
    assert s["direction_accuracy"] == 1.0
    one_day = result.scores("naive", 0)
    assert one_day["n"] == 2 and one_day["mae"] == pytest.approx(1.0)
    assert one_day["coverage_80"] == 1.0


def test_seasonal_naive_repeats_the_last_observed_week_and_skips_missing_days():
    y = np.array([1, 2, 3, 4, 5, 6, 7, 1, 2, np.nan, 4, 5, 6, 7], dtype=float)
    mean, sd = seasonal_naive_forecast(y, 9)
    assert mean.tolist() == [1, 2, 3, 4, 5, 6, 7, 1, 2]  # day 10's weekday comes from week 1
    assert sd[0] == 0 and np.all(sd >= 0)


def _weekly(n_series: int, days: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n_series):
        t = np.arange(days)
        y = 60 + i + 4 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.7, days)
        y[rng.random(days) < 0.1] = np.nan
        out[i] = History(y, np.datetime64("2026-01-05"))
    return out


@pytest.mark.parametrize(("kind", "ceiling"), [
    ("naive", 3.0), ("seasonal_naive", 1.6), ("ets", 1.2), ("sarimax", 1.5),
])
def test_each_baseline_stays_under_its_error_ceiling_on_a_weekly_series(kind, ceiling):
    models = {kind: make(kind)} if kind == "naive" else {kind: make(kind), "naive": make("naive")}
    result = backtest(models, _weekly(3, 63), "resting_hr", test_fraction=0.2, step=4)
    s = result.scores(kind)
    assert s["n"] > 0
    assert s["mase"] < ceiling
    if kind != "naive":  # a weekly pattern is there to be seen; naive cannot see it
        assert s["mase"] < result.scores("naive")["mase"]
