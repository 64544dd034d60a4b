"""The nightly promotion judges a candidate against the promoted version's STORED model
(loaded, never refitted) on days neither trained on, and never changes the cached model."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from forecasting import registry, service
from forecasting.backtest import backtest
from forecasting.forecasters import History, make
from forecasting.forecasters.lstm import LSTMForecaster

pytestmark = pytest.mark.django_db(transaction=True)
DAYS, HOLDOUT = 84, 21
START = np.datetime64("2026-01-05")


def noise_panel(n: int = 5, seed: int = 0) -> dict:
    """Independent noise around a constant level: the last value (naive) misses by about
    sqrt(2) sd, a smoother (ETS) by about one sd (known, different skill)."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        y = 60 + i + rng.normal(0, 2.0, DAYS)
        cov = np.full((DAYS, 7), np.nan)
        out[i] = History(y, START, cov)
    return out


def _stored(kind_or_model, train_end: date) -> object:
    model = make(kind_or_model) if isinstance(kind_or_model, str) else kind_or_model
    mv = registry.register("resting_hr", model, metrics={"mase": 9.9}, train_start=None,
                           train_end=train_end, n_series=5)
    assert registry.promote_if_better(mv, None)
    return mv


@pytest.fixture
def baselines(settings):
    settings.FORECAST_BASELINES = ["naive", "seasonal_naive"]


def test_of_two_models_of_known_skill_the_better_one_is_promoted_and_the_worse_kept_out(db, baselines):
    series = noise_panel()
    early = date(2026, 2, 1)  # before the first scored origin
    naive_v = _stored("naive", early)
    won = service.compare_and_promote("resting_hr", series, make("ets"), holdout=HOLDOUT, days=DAYS)
    assert won.promoted and registry.promoted("resting_hr") == won.version != naive_v
    assert won.scores["candidate"]["mase"] < 0.85 * won.scores["current"]["mase"]
    # Now the better model is the stored one: a worse candidate stays out.
    lost = service.compare_and_promote("resting_hr", series, make("naive"), holdout=HOLDOUT, days=DAYS)
    assert not lost.promoted and registry.promoted("resting_hr") == won.version
    assert lost.scores["current"]["mase"] == pytest.approx(won.scores["candidate"]["mase"])


def test_the_stored_lstm_is_scored_as_stored_and_the_cached_model_is_not_changed(db, baselines):
    series = noise_panel()
    hs = list(series.values())
    small = {"window": 14, "units": 8, "dense": 8, "epochs": 2, "batch_size": 64, "augment": 0}
    old = LSTMForecaster(seed=1, **small).fit([h.cut(40) for h in hs])
    mv = _stored(old, date(2026, 2, 14))  # index 40: before the first origin (63)
    cached = registry._load(mv.pk)
    before = [w.copy() for w in cached.model_.get_weights()]
    outcome = service.compare_and_promote("resting_hr", series, LSTMForecaster(seed=2, **small),
                                          holdout=HOLDOUT, days=DAYS)
    after = registry._load(mv.pk).model_.get_weights()
    assert registry._load(mv.pk) is cached
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    # The "current" score is the stored weights' own score, not a refit's.
    stored = LSTMForecaster.from_bytes(bytes(mv.artifact))
    direct = backtest({"stored": registry.Frozen(stored)}, series, "resting_hr", horizon=14,
                      test_fraction=HOLDOUT / DAYS, min_history=7)
    assert outcome.scores["current"]["mase"] == pytest.approx(direct.scores("stored")["mase"], rel=1e-5)
    assert outcome.version.train_end == date(2026, 3, 9)  # START + 63 days: the first origin


def test_a_loaded_version_ignores_fit(db):
    mv = _stored("seasonal_naive", date(2026, 1, 1))
    loaded = registry.load(mv)
    assert not loaded.is_global and loaded.name == "seasonal_naive"
    assert loaded.fit([History(np.arange(30.0), START)]) is loaded
