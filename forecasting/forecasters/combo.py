"""SARIMAX on a robust target, combined with a robust recent level ("combo").

Why (evidence in docs/forecasting.md): on real resting heart rate the week-ahead
outcome is mostly the person's level plus noise, and single nights of illness or
sensor noise (130 bpm at zero steps) pull SARIMAX's state. So:

* the target is cleaned first: a day further than ``clip`` robust sds (1.4826 MAD)
  from the median of the last 28 observed days is treated as missing, not fitted;
* the forecast is the equal-weight mean of SARIMAX's forecast on the cleaned series
  and the median of the last ``level_days`` observed days (a median needs no cleaning) (a forecast
  combination: their errors are partly independent, so the mean errs less than each);
* the 80% interval is SARIMAX's, centred on the combined mean and scaled by
  ``width`` (fixed here, chosen on the development part only).

Defaults chosen on the LifeSnaps development part (every third origin), from a grid
of level_days 7/14/28, weight 0/0.3/0.5/0.7, width 1.0/1.2/1.4, cleaned level or not.
"""

from __future__ import annotations

import numpy as np

from forecasting.forecasters.base import Forecaster, History, Prediction
from forecasting.forecasters.baselines import SARIMAX


def robust_clean(y: np.ndarray, clip: float, days: int = 28) -> np.ndarray:
    """``y`` with days far from the recent median (over ``clip`` robust sds) set to NaN."""
    recent = y[-days:]
    if np.count_nonzero(~np.isnan(recent)) < 7:
        return y
    med = np.nanmedian(recent)
    sd = max(1.4826 * np.nanmedian(np.abs(recent - med)), 1.0)
    out = y.copy()
    with np.errstate(invalid="ignore"):
        out[np.abs(y - med) > clip * sd] = np.nan
    return out


class Combo(Forecaster):
    name = "combo"

    def __init__(self, weight: float = 0.5, clip: float = 4.0, level_days: int = 28, width: float = 1.2,
                 progress: bool = False) -> None:
        self.weight = weight
        self.clip = clip
        self.level_days = level_days
        self.width = width
        self.progress = progress

    def get_config(self) -> dict:
        return {"weight": self.weight, "clip": self.clip, "level_days": self.level_days, "width": self.width}

    def _predict(self, histories: list[History], horizon: int) -> Prediction:
        clean = [History(robust_clean(h.y, self.clip), h.start, h.covariates) for h in histories]
        sar = SARIMAX(progress=self.progress).predict(clean, horizon)
        level = np.full(len(clean), np.nan)
        for i, h in enumerate(histories):
            obs = h.y[~np.isnan(h.y)][-self.level_days:]
            if len(obs):
                level[i] = np.median(obs)
        level = np.where(np.isnan(level), sar.mean[:, 0], level)
        mean = self.weight * sar.mean + (1 - self.weight) * level[:, None]
        half_lo = (sar.mean - sar.p10) * self.width
        half_hi = (sar.p90 - sar.mean) * self.width
        return Prediction(mean, mean - half_lo, mean.copy(), mean + half_hi)
