"""The one interface every forecaster shares.

A forecaster is fitted on a list of ``History`` (one per patient; global models learn
across them, local models keep nothing) and predicts, for each history, the next
``horizon`` days as a mean and the 10th/50th/90th percentiles. Missing days are NaN
in ``History.y`` and stay NaN: each model says how it treats them.

Public ``fit``/``predict`` validate and call the private ``_fit``/``_predict``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANTILES = (0.1, 0.5, 0.9)
Z80 = 1.2815515655446004  # the normal 90th percentile: mean +- Z80 sd is an 80% interval


@dataclass
class History:
    """One patient's daily series up to a forecast origin (the last element).

    ``y``: the target (NaN = missing day). ``covariates``: shape (len(y), k) in the
    order of ``forecasting.features.COVARIATES`` (NaN = missing), or None.
    ``start``: the date of ``y[0]`` (day-of-week features and charts).
    """

    y: np.ndarray
    start: np.datetime64
    covariates: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.float64)
        self.start = np.datetime64(self.start, "D")  # type: ignore[call-overload]
        if self.y.ndim != 1:
            raise ValueError("History.y must be one-dimensional")
        if self.covariates is not None:
            self.covariates = np.asarray(self.covariates, dtype=np.float64)
            if self.covariates.ndim != 2 or len(self.covariates) != len(self.y):
                raise ValueError("History.covariates must have shape (len(y), k)")

    def cut(self, end: int) -> History:
        """The history up to and including index ``end``."""
        return History(self.y[: end + 1], self.start,
                       None if self.covariates is None else self.covariates[: end + 1])


@dataclass
class Prediction:
    """Forecasts of n histories over h days: each array has shape (n, h)."""

    mean: np.ndarray
    p10: np.ndarray
    p50: np.ndarray
    p90: np.ndarray

    @classmethod
    def empty(cls, n: int, h: int) -> Prediction:
        return cls(*(np.full((n, h), np.nan) for _ in range(4)))

    def stack(self) -> np.ndarray:
        """Shape (n, h, 4): mean, p10, p50, p90."""
        return np.stack([self.mean, self.p10, self.p50, self.p90], axis=-1)


class Forecaster:
    """Base class. ``name`` identifies the kind in the registry and in tables."""

    name = "base"
    is_global = False  # learns across patients in fit (else fit keeps nothing)
    max_horizon = 14

    def fit(self, histories: list[History]) -> Forecaster:
        if not isinstance(histories, list) or not all(isinstance(h, History) for h in histories):
            raise TypeError("fit takes a list of History")
        self._fit(histories)
        return self

    def predict(self, histories: list[History], horizon: int) -> Prediction:
        if not 1 <= horizon <= self.max_horizon:
            raise ValueError(f"horizon must be 1 to {self.max_horizon} days, not {horizon}")
        if not all(isinstance(h, History) for h in histories):
            raise TypeError("predict takes a list of History")
        if not histories:
            return Prediction.empty(0, horizon)
        out = self._predict(histories, horizon)
        # Quantiles never cross, whatever the model did.
        out.p10 = np.minimum(out.p10, out.p50)
        out.p90 = np.maximum(out.p90, out.p50)
        return out

    def _fit(self, histories: list[History]) -> None:  # local models keep nothing
        return None

    def _predict(self, histories: list[History], horizon: int) -> Prediction:
        raise NotImplementedError

    def get_config(self) -> dict:
        """Hyperparameters, stored verbatim in the registry."""
        return {}
