"""One backtest for every model: rolling origin, scored against seasonal naive.

For each series, forecast origins run daily over its last ``test_fraction`` of days
(never before ``min_history`` days). A local model (baselines) refits at every origin
on the history up to it; a global model (the LSTM) is fitted once on every series cut
just before its first origin (plus any ``extra_training`` series, e.g. a simulated
cohort) and then rolls forward without refitting, so no test day is ever seen in
training. Scores (``score``), at the headline horizon (7 days) unless said otherwise:

* ``mae``: mean absolute error of the mean forecast;
* ``mase``: the same errors divided by the series' in-sample MAE of the one-week
  seasonal naive forecast (Hyndman & Koehler 2006), computed on the history before the
  first origin; below 1 beats that in-sample yardstick;
* ``coverage_80``: share of outcomes inside the 10th-90th percentile interval;
* ``within_3bpm_7d``: share of 7-day-ahead forecasts within 3 units of the outcome
  (beats/min for resting heart rate; None for other metrics);
* ``direction_accuracy``: share of forecasts that get the sign of the change right,
  the change measured from the mean of the observed days in the week before the
  origin (the current level); outcomes equal to that level are left out.

Missing outcomes are left out of every score (never filled).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from forecasting.forecasters.base import Forecaster, History

HEADLINE = 7


def mase_scale(y: np.ndarray, season: int = 7) -> float:
    """In-sample MAE of the seasonal naive forecast over observed pairs (NaN if < 3)."""
    if len(y) <= season:
        return np.nan
    d = np.abs(y[season:] - y[:-season])
    d = d[~np.isnan(d)]
    return float(d.mean()) if len(d) >= 3 and d.mean() > 0 else np.nan


def score(truth: np.ndarray, forecast: np.ndarray, ref: np.ndarray, scale: np.ndarray,
          k: int | None, within: float | None = 3.0) -> dict:
    """Scores at horizon index ``k`` (0 = one day ahead), or over all horizons if k is None.

    truth (n, H); forecast (n, H, 4) as mean, p10, p50, p90; ref (n,) the level at the
    origin; scale (n,) the MASE scale of each forecast's series.
    """
    sl = slice(None) if k is None else slice(k, k + 1)
    y = truth[:, sl]
    mean, p10, p90 = forecast[:, sl, 0], forecast[:, sl, 1], forecast[:, sl, 3]
    ok = ~np.isnan(y) & ~np.isnan(mean)
    n = int(ok.sum())
    if n == 0:
        return {"n": 0, "mae": None, "mase": None, "coverage_80": None, "within_3bpm_7d": None,
                "direction_accuracy": None}
    err = np.abs(y - mean)[ok]
    sc = np.broadcast_to(scale[:, None], y.shape)[ok]
    has_scale = ~np.isnan(sc)
    inside = ((p10 <= y) & (y <= p90))[ok]
    r = np.broadcast_to(ref[:, None], y.shape)[ok]
    moved = (y[ok] != r) & ~np.isnan(r)
    direction = np.sign(y[ok] - r) == np.sign(mean[ok] - r)
    return {
        "n": n,
        "mae": float(err.mean()),
        "mase": float((err[has_scale] / sc[has_scale]).mean()) if has_scale.any() else None,
        "coverage_80": float(inside.mean()),
        "within_3bpm_7d": float((err <= within).mean()) if within is not None else None,
        "direction_accuracy": float(direction[moved].mean()) if moved.any() else None,
    }


@dataclass
class BacktestResult:
    target: str
    horizon: int
    headline: int
    series: list
    days: int
    origins: np.ndarray  # (n, 2): series position, origin index
    truth: np.ndarray  # (n, H)
    ref: np.ndarray  # (n,)
    scale: np.ndarray  # (n,)
    #: the last day a global model trained on (the latest first origin over the series)
    train_end: np.datetime64 | None = None
    forecasts: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n, H, 4)
    seconds: dict[str, float] = field(default_factory=dict)

    def scores(self, name: str, k: int | None = -1) -> dict:
        """Scores at horizon index k (default: the headline horizon; None: all horizons)."""
        k = self.headline - 1 if k == -1 else k
        within = 3.0 if self.target == "resting_hr" else None
        return score(self.truth, self.forecasts[name], self.ref, self.scale, k, within)

    def by_horizon(self, name: str, key: str = "mase") -> list:
        return [self.scores(name, k)[key] for k in range(self.horizon)]

    def to_json(self) -> dict:
        models = []
        for name in self.forecasts:
            s = self.scores(name)
            overall = self.scores(name, None)
            models.append({
                "name": name, "mase": s["mase"], "mae": s["mae"], "coverage_80": s["coverage_80"],
                "within_3bpm_7d": s["within_3bpm_7d"], "direction_accuracy": s["direction_accuracy"],
                "n": s["n"], "mase_1_to_h": overall["mase"], "coverage_80_1_to_h": overall["coverage_80"],
                "mase_by_horizon": self.by_horizon(name),
                "coverage_80_by_horizon": self.by_horizon(name, "coverage_80"), "seconds": round(self.seconds.get(name, 0.0), 2),
            })
        return {"target": self.target, "horizon_days": self.headline, "max_horizon": self.horizon,
                "series": len(self.series), "days": self.days, "origins": int(len(self.origins)),
                "models": models}

    def table(self) -> str:
        data = self.to_json()
        best = min((m["mase"] for m in data["models"] if m["mase"] is not None), default=None)
        head = (f"backtest {self.target}: {data['series']} series, {data['days']} days, "
                f"{data['origins']} origins; scores at {self.headline} days ahead "
                f"(MASE 1-{self.horizon}: all horizons)")
        cols = f"{'model':<16}{'MASE':>7}{'MAE':>8}{'cover80':>9}{'within3':>9}{'direction':>10}{'MASE 1-' + str(self.horizon):>11}{'n':>6}"
        lines = [head, cols, "-" * len(cols)]
        fmt = lambda v, p=3: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
        for m in data["models"]:
            mark = " *" if best is not None and m["mase"] == best else ""
            lines.append(f"{m['name']:<16}{fmt(m['mase']):>7}{fmt(m['mae'], 2):>8}{fmt(m['coverage_80']):>9}"
                         f"{fmt(m['within_3bpm_7d']):>9}{fmt(m['direction_accuracy']):>10}"
                         f"{fmt(m['mase_1_to_h']):>11}{m['n']:>6}{mark}")
        lines.append("* lowest MASE at the headline horizon")
        return "\n".join(lines)


def origins_for(h: History, horizon: int, min_history: int, test_fraction: float, step: int) -> np.ndarray:
    """Origins (indices) of one series: daily over its last test_fraction, each with some
    observed history in the week before and at least one observed outcome after."""
    T = len(h.y)
    first = max(min_history - 1, int(np.floor(T * (1 - test_fraction))))
    obs = ~np.isnan(h.y)
    c = np.concatenate([[0], np.cumsum(obs)])
    out = []
    for t in range(first, T - 1, step):
        recent = c[t + 1] - c[max(t - 6, 0)]
        future = c[min(t + 1 + horizon, T)] - c[t + 1]
        if recent >= 1 and future >= 1:
            out.append(t)
    return np.asarray(out, dtype=np.int64)


def backtest(models: Mapping[str, Forecaster], series: Mapping, target: str, *, horizon: int = 14,
             headline: int = HEADLINE, min_history: int = 28, test_fraction: float = 0.5, step: int = 1,
             extra_training: list[History] | None = None, progress: bool = False) -> BacktestResult:
    """Rolling-origin backtest of every model on the same origins (see the module doc)."""
    ids = list(series)
    hs = [series[i] for i in ids]
    per = [origins_for(h, horizon, min_history, test_fraction, step) for h in hs]
    origins = np.array([(i, t) for i, ts in enumerate(per) for t in ts], dtype=np.int64).reshape(-1, 2)
    n = len(origins)
    truth = np.full((n, horizon), np.nan)
    ref = np.full(n, np.nan)
    scale = np.full(n, np.nan)
    cuts = []
    series_scale = [mase_scale(h.y[: ts[0] + 1]) if len(ts) else np.nan for h, ts in zip(hs, per, strict=True)]
    for j, (i, t) in enumerate(origins):
        y = hs[i].y
        fut = y[t + 1: t + 1 + horizon]
        truth[j, : len(fut)] = fut
        week = y[max(t - 6, 0): t + 1]
        ref[j] = np.nanmean(week) if np.any(~np.isnan(week)) else np.nan
        scale[j] = series_scale[i]
        cuts.append(hs[i].cut(t))
    firsts = [h.start + np.timedelta64(int(ts[0]), "D") for h, ts in zip(hs, per, strict=True) if len(ts)]
    result = BacktestResult(target, horizon, headline, ids, int(sum(len(h.y) for h in hs)), origins,
                            truth, ref, scale, max(firsts) if firsts else None)
    train = [h.cut(ts[0]) for h, ts in zip(hs, per, strict=True) if len(ts)] + list(extra_training or [])
    for name, model in models.items():
        t0 = time.perf_counter()
        if model.is_global:
            model.fit(train)
        if progress:
            # on stderr: ``backtest --json`` prints only the JSON on stdout
            print(f"  {name}: forecasting {n} origins", file=sys.stderr, flush=True)
        pred = model.predict(cuts, horizon) if n else None
        result.forecasts[name] = pred.stack() if pred is not None else np.zeros((0, horizon, 4))
        result.seconds[name] = time.perf_counter() - t0
    return result
