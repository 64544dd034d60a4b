"""Forecasters sharing one interface (see base.py). TensorFlow loads only with lstm."""

from __future__ import annotations

from forecasting.forecasters.base import QUANTILES, Forecaster, History, Prediction
from forecasting.forecasters.baselines import ETS, SARIMAX, Naive, SeasonalNaive
from forecasting.forecasters.combo import Combo

BASELINES = {cls.name: cls for cls in (Naive, SeasonalNaive, ETS, SARIMAX, Combo)}
KINDS = (*BASELINES, "lstm")


def make(kind: str, **config) -> Forecaster:
    """A fresh forecaster of a kind (``naive``, ``seasonal_naive``, ``ets``, ``sarimax``, ``combo``, ``lstm``)."""
    if kind == "lstm":
        from forecasting.forecasters.lstm import LSTMForecaster

        return LSTMForecaster(**config)
    if kind not in BASELINES:
        raise ValueError(f"unknown forecaster {kind!r}; use one of {', '.join(KINDS)}")
    return BASELINES[kind](**config)


__all__ = ["QUANTILES", "BASELINES", "KINDS", "Forecaster", "History", "Prediction", "make"]
