"""The global LSTM: trains fast on a tiny dataset, keeps the cuDNN configuration,
is reproducible with a fixed seed, and survives the registry's artifact round trip."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from forecasting.forecasters import History
from forecasting.forecasters.lstm import LSTMForecaster


def tiny_panel(n: int = 6, days: int = 70, seed: int = 0) -> list[History]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = np.arange(days)
        y = 58 + 2 * i + 3 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.8, days)
        cov = np.full((days, 7), np.nan)
        cov[:, 3] = rng.uniform(4000, 9000, days)  # steps
        y[rng.random(days) < 0.15] = np.nan
        out.append(History(y, np.datetime64("2026-02-02"), cov))
    return out


def small_lstm(**kw) -> LSTMForecaster:
    return LSTMForecaster(window=14, units=8, dense=8, epochs=3, batch_size=64, seed=3, **kw)


def test_the_lstm_trains_on_a_tiny_dataset_in_well_under_a_minute_on_cpu():
    panel = tiny_panel()
    t0 = time.perf_counter()
    model = small_lstm().fit(panel)
    pred = model.predict(panel, 14)
    assert time.perf_counter() - t0 < 60
    assert pred.mean.shape == (6, 14)
    assert np.all(np.isfinite(pred.mean))
    assert np.all(pred.p10 <= pred.p50) and np.all(pred.p50 <= pred.p90)
    # Forecasts are on the patients' own scale, not the scaled one.
    assert np.all(np.abs(pred.p50[:, 0] - np.array([np.nanmedian(h.y[-14:]) for h in panel])) < 10)
    assert len(model.epoch_seconds_) >= 1


def test_the_lstm_keeps_the_cudnn_eligible_configuration():
    layer = small_lstm()._build().get_layer("lstm")
    config = layer.get_config()
    assert config["activation"] == "tanh"
    assert config["recurrent_activation"] == "sigmoid"
    assert config["recurrent_dropout"] == 0
    assert config["unroll"] is False
    assert config["use_bias"] is True


def test_the_same_seed_gives_the_same_model_and_the_artifact_round_trips():
    panel = tiny_panel(n=4, days=50)
    a = small_lstm().fit(panel)
    b = small_lstm().fit(panel)
    pa, pb = a.predict(panel, 7), b.predict(panel, 7)
    np.testing.assert_allclose(pa.p50, pb.p50, rtol=1e-5, atol=1e-5)
    restored = LSTMForecaster.from_bytes(a.to_bytes())
    np.testing.assert_allclose(restored.predict(panel, 7).p90, pa.p90, rtol=1e-6, atol=1e-6)


def test_a_patient_with_no_observed_day_in_the_window_gets_no_forecast():
    panel = tiny_panel(n=4, days=50)
    model = small_lstm().fit(panel)
    empty = History(np.full(20, np.nan), np.datetime64("2026-02-02"))
    pred = model.predict([panel[0], empty], 3)
    assert np.all(np.isfinite(pred.mean[0]))
    assert np.all(np.isnan(pred.mean[1]))


def test_fit_refuses_histories_too_short_to_make_a_window():
    with pytest.raises(ValueError, match="no training windows"):
        small_lstm().fit([History(np.array([60.0, np.nan]), np.datetime64("2026-02-02"))])


def test_a_patient_whose_days_swing_more_than_the_cohort_gets_a_wider_interval():
    panel = tiny_panel(n=6, days=120)  # long enough for disjoint calibration windows
    model = small_lstm().fit(panel)
    assert model.n_cal_windows_ >= 20 and np.any(model.cqr_ != 0)
    rng = np.random.default_rng(1)
    calm = panel[0]
    wild_y = calm.y.copy()
    wild_y[-40:] = 60 + rng.choice([-1, 1], 40) * rng.uniform(6, 12, 40)  # same median, big swings
    wild = History(wild_y, calm.start, calm.covariates)
    widen = model._local_widening([calm, wild])
    assert widen[0] == pytest.approx(0.0, abs=0.5)
    assert widen[1] > widen[0]
    model.local_windows = 0
    assert np.all(model._local_widening([calm, wild]) == 0)


def test_calibration_windows_come_after_and_never_overlap_the_early_stopping_windows():
    model = LSTMForecaster(horizon=14, val_fraction=0.15)
    ends = np.arange(0, 150)
    group = model._groups(ends)
    train, es, cal = ends[group == 0], ends[group == 1], ends[group == 2]
    assert len(train) and len(es) >= 7 and len(cal) >= 7
    # Each group's targets (end + 1 .. end + 14) stop before the next group's first window.
    assert train.max() + 14 < es.min() and es.max() + 14 < cal.min()
    assert np.all(model._groups(np.arange(40)) == 0)  # too short to split: all training


def test_the_vectorised_row_statistics_give_numpys_values_exactly():
    """nanmedian_rows and excess_quantiles replace per-row numpy calls in the daily job:
    the same numbers, NaN rows and short groups included."""
    from forecasting.forecasters.lstm import excess_quantiles, nanmedian_rows

    rng = np.random.default_rng(5)
    a = 60 + rng.normal(0, 5, (500, 28))
    a[rng.random(a.shape) < 0.3] = np.nan
    a[:5] = np.nan
    a[5:10, 1:] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.array_equal(nanmedian_rows(a), np.nanmedian(a, axis=1), equal_nan=True)
    for _ in range(50):
        sizes = rng.integers(0, 60, rng.integers(1, 200))
        flat = rng.normal(0, 1, sizes.sum()) * rng.choice([1e-3, 1.0, 100.0])
        flat[rng.random(flat.size) < 0.3] = np.nan
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        want = np.zeros(len(sizes))
        for i in range(len(sizes)):
            sc = flat[bounds[i]:bounds[i + 1]]
            sc = sc[~np.isnan(sc)]
            if len(sc) >= 10:
                want[i] = max(0.0, float(np.quantile(sc, min(1.0, 0.8 * (1 + 1 / len(sc))))))
        assert np.array_equal(excess_quantiles(flat, sizes), want)
