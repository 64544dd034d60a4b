"""A global LSTM forecaster (TensorFlow / Keras 3): one model across patients.

Input: the last ``window`` days of one patient, one row per day::

    target scaled by the window (median and MAD of the patient's own last ``window``
    days, robust to artefact nights),
    target-present mask, each covariate on a fixed scale and its mask, day of week
    (sin, cos), and the window's level and log-scale (so the model can tell a
    patient at 50 bpm from one at 80 after scaling).

Missing days are zeros with mask 0: never silently zero-filled values the model
cannot tell from real ones. Output: for horizons 1..14, the 50th percentile and two
positive offsets (softplus) giving the 10th and 90th, so quantiles never cross;
trained with the pinball loss on observed days only. The 80% interval is then
calibrated on held-out windows that come after, and are disjoint in time from, the
windows early stopping selects weights on (conformalized quantile regression, Romano
et al. 2019): per horizon, the interval is widened (or narrowed) by the conformity quantile;
at prediction time each patient's interval is widened further when the model's
forecasts from that patient's own recent past missed more often (``_local_widening``).

The LSTM keeps the cuDNN-eligible configuration (tanh, sigmoid, no recurrent
dropout, not unrolled, with bias). TensorFlow is imported inside the functions that
train or predict, never at module import, so the API never loads it.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import numpy as np

from forecasting.features import COVARIATES
from forecasting.forecasters.base import QUANTILES, Forecaster, History, Prediction

#: The fixed (centre, scale) that brings each covariate near unit range (steps: log1p).
_COV_SCALE = {
    "resting_hr": (65.0, 10.0), "hr_mean": (75.0, 10.0), "hr_range": (40.0, 20.0),
    "steps": (8.5, 1.5), "active_minutes": (30.0, 30.0), "sleep_minutes": (420.0, 60.0),
    "hrv": (50.0, 20.0),
}


class LSTMForecaster(Forecaster):
    """One global LSTM for one target metric. Hyperparameters are kept verbatim;
    learned state lives in attributes ending in ``_``."""

    name = "lstm"
    is_global = True

    def __init__(self, target: str = "resting_hr", window: int = 28, horizon: int = 14,
                 units: int = 64, dense: int = 64, epochs: int = 30, batch_size: int = 256,
                 learning_rate: float = 2e-3, patience: int = 4, stride: int = 1,
                 val_fraction: float = 0.15, min_observed: float = 0.5, seed: int = 7,
                 verbose: int = 0, calibrate: bool = True, augment: int = 1,
                 local_windows: int = 8) -> None:
        self.target = target
        self.window = window
        self.horizon = horizon
        self.units = units
        self.dense = dense
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.stride = stride
        self.val_fraction = val_fraction
        self.min_observed = min_observed
        self.seed = seed
        self.verbose = verbose
        self.calibrate = calibrate
        self.augment = augment
        self.local_windows = local_windows
        self.max_horizon = horizon
        self.model_: Any = None
        self.n_train_windows_ = 0
        self.n_val_windows_ = 0
        self.n_cal_windows_ = 0
        self.level_ = (0.0, 1.0)  # centre and scale of window levels (for the level input)
        self.min_scale_ = 1.0
        self.cqr_ = np.zeros(horizon)
        self.epoch_seconds_: list[float] = []
        self.history_: dict = {}

    # ------------------------------------------------------------------ config

    def get_config(self) -> dict:
        return {k: getattr(self, k) for k in (
            "target", "window", "horizon", "units", "dense", "epochs", "batch_size",
            "learning_rate", "patience", "stride", "val_fraction", "min_observed", "seed",
            "calibrate", "augment", "local_windows")}

    @property
    def covariate_index(self) -> list[int]:
        return [j for j, c in enumerate(COVARIATES) if c != self.target]

    @property
    def n_features(self) -> int:
        return 2 + 2 * len(self.covariate_index) + 2 + 2

    # ------------------------------------------------------------------ windows

    def _windows(self, histories: list[History], ends: list[np.ndarray]) -> tuple:
        """Inputs for windows ending at ``ends[i]`` (indices into history i).

        Returns X (n, window, F), level mu (n,), scale s (n,), and the future target
        (n, horizon) scaled by the window (NaN where missing or beyond the series).
        Per history only slicing happens; all arithmetic is vectorised over windows.
        """
        L, H = self.window, self.horizon
        k = len(COVARIATES)
        offsets = np.arange(-L + 1, H + 1)  # window days, then future days
        used = [(h, np.asarray(end)) for h, end in zip(histories, ends, strict=True) if len(end)]
        if not used:
            F = self.n_features
            return (np.zeros((0, L, F), np.float32), np.zeros(0), np.ones(0), np.zeros((0, H)))
        # Every used history in one NaN-padded buffer (L - 1 days before, H after each),
        # so all windows are cut by one fancy index instead of a copy per history.
        lengths = np.array([len(h.y) for h, _ in used])
        base = np.concatenate([[0], np.cumsum(lengths + L - 1 + H)])
        y_all = np.full(int(base[-1]), np.nan)
        c_all = np.full((int(base[-1]), k), np.nan)
        for (h, _), b, T in zip(used, base[:-1].tolist(), lengths.tolist(), strict=True):
            y_all[b + L - 1: b + L - 1 + T] = h.y
            if h.covariates is not None:
                c_all[b + L - 1: b + L - 1 + T] = h.covariates
        counts = np.array([len(e) for _, e in used])
        end = np.concatenate([e for _, e in used])
        idx = (np.repeat(base[:-1], counts) + end + (L - 1))[:, None] + offsets[None, :]
        yy = y_all[idx]
        wy, fut = yy[:, :L], yy[:, L:]
        starts = np.array([h.start.astype(np.int64) for h, _ in used])
        first_day = np.repeat(starts, counts) + end - L + 1
        # Robust window statistics: one artefact night must not move the level.
        mu = nanmedian_rows(wy)
        mad = nanmedian_rows(np.abs(wy - mu[:, None]))
        s = np.maximum(1.4826 * np.nan_to_num(mad), self.min_scale_)
        z = (wy - mu[:, None]) / s[:, None]
        # X is filled in place as float32 (each value computed in float64, then rounded
        # once, as before): no float64 copy of the whole input (80,000 windows of the
        # daily job's local widening are ~360 MB in float64)
        n, kc = len(mu), len(self.covariate_index)
        X = np.empty((n, L, self.n_features), np.float32)
        missing = np.isnan(z)
        X[..., 0] = np.where(missing, 0.0, z)
        X[..., 1] = ~missing
        # the covariates are scaled per day, then cut into windows (a day is in many)
        days = np.empty((len(c_all), 2 * kc), np.float32)
        for j, ci in enumerate(self.covariate_index):
            name = COVARIATES[ci]
            centre, scale = _COV_SCALE[name]
            x = np.log1p(np.maximum(c_all[:, ci], 0)) if name == "steps" else c_all[:, ci]
            v = np.clip((x - centre) / scale, -5, 5)
            missing = np.isnan(v)
            days[:, j] = np.where(missing, 0.0, v)
            days[:, kc + j] = ~missing
        X[..., 2: 2 + 2 * kc] = days[idx[:, :L]]
        dow = (first_day[:, None] + 3 + np.arange(L)[None, :]) % 7  # Monday = 0
        angle = 2 * np.pi * dow / 7
        X[..., 2 + 2 * kc] = np.sin(angle)
        X[..., 3 + 2 * kc] = np.cos(angle)
        centre, scale = self.level_
        X[..., 4 + 2 * kc] = ((mu - centre) / scale)[:, None]
        X[..., 5 + 2 * kc] = np.log(s / self.min_scale_)[:, None]
        return X, mu, s, (fut - mu[:, None]) / s[:, None]

    def _training_ends(self, h: History) -> np.ndarray:
        """Origins with enough observed input and at least one observed future day."""
        y = h.y
        T = len(y)
        if T < 2:
            return np.zeros(0, dtype=np.int64)
        obs = (~np.isnan(y)).astype(np.int64)
        c = np.concatenate([[0], np.cumsum(obs)])
        ends = np.arange(0, T - 1, self.stride)
        lo = np.maximum(ends - self.window + 1, 0)
        in_window = c[ends + 1] - c[lo]
        future = c[np.minimum(ends + 1 + self.horizon, T)] - c[ends + 1]
        ok = (in_window >= self.min_observed * self.window) & (future > 0)
        return ends[ok]

    # ------------------------------------------------------------------ model

    def _build(self):
        import keras
        from keras import layers, ops

        H = self.horizon
        inp = keras.Input(shape=(self.window, self.n_features), name="days")
        x = layers.LSTM(self.units, activation="tanh", recurrent_activation="sigmoid",
                        recurrent_dropout=0.0, unroll=False, use_bias=True, name="lstm")(inp)
        x = layers.Dense(self.dense, activation="relu", name="hidden")(x)
        raw = layers.Reshape((H, 3))(layers.Dense(H * 3, name="heads")(x))
        p50 = raw[..., 0]
        p10 = p50 - ops.softplus(raw[..., 1])
        p90 = p50 + ops.softplus(raw[..., 2])
        out = ops.stack([p10, p50, p90], axis=-1)
        return keras.Model(inp, out, name=f"lstm_{self.target}")

    @staticmethod
    def _pinball(y_true, y_pred):
        from keras import ops

        y = y_true[..., 0:1]
        mask = y_true[..., 1]
        q = ops.convert_to_tensor(np.asarray(QUANTILES, dtype=np.float32))
        diff = y - y_pred
        loss = ops.maximum(q * diff, (q - 1.0) * diff)
        per_day = ops.mean(loss, axis=-1) * mask
        return ops.sum(per_day, axis=-1) / ops.maximum(ops.sum(mask, axis=-1), 1.0)

    def _augment(self, histories: list[History]) -> list[History]:
        """Extra training copies that look more like real recordings: a slow random-walk
        drift of the level, days dropped at random (watch not worn), rare artefact days.
        Inputs and outcomes get the same change, so every copy is a consistent series."""
        rng = np.random.default_rng(self.seed)
        out = []
        for h in histories:
            for _ in range(self.augment):
                y = h.y.copy()
                cov = None if h.covariates is None else h.covariates.copy()
                spread = np.nanstd(y) if np.any(~np.isnan(y)) else 1.0
                spread = max(spread, 1e-3)
                y = y + np.cumsum(rng.normal(0, 0.15 * spread, len(y)))
                drop = rng.random(len(y)) < rng.uniform(0.0, 0.5)
                y[drop] = np.nan
                if cov is not None:
                    cov[drop] = np.nan
                spikes = rng.random(len(y)) < 0.02
                y[spikes] += rng.choice([-1, 1], spikes.sum()) * rng.uniform(4, 12, spikes.sum()) * spread
                out.append(History(y, h.start, cov))
        return out

    def _fit(self, histories: list[History]) -> None:
        import keras

        keras.utils.set_random_seed(self.seed)
        if self.augment:
            histories = histories + self._augment(histories)
        ends = [self._training_ends(h) for h in histories]
        # Fixed statistics first (they shape the inputs): window level and a floor on
        # the window scale, from the training windows.
        self.min_scale_ = 1e-6
        self.level_ = (0.0, 1.0)
        X, mu, s, fut = self._windows(histories, ends)
        if len(X) == 0:
            raise ValueError("no training windows: the histories are too short or too sparse")
        self.min_scale_ = float(max(0.25 * np.median(s), 1e-3))
        self.level_ = (float(np.mean(mu)), float(max(np.std(mu), 1e-3)))
        X, mu, s, fut = self._windows(histories, ends)
        # Three groups per series, in time order and disjoint: training windows, then
        # early-stopping windows (they select the weights), then calibration windows (the
        # conformal quantiles). A gap of one horizon between groups keeps any group's
        # targets out of the next one's days; see ``_groups``.
        group = np.concatenate([self._groups(e) for e in ends if len(e)])
        mask = (~np.isnan(fut)).astype(np.float32)
        Y = np.stack([np.nan_to_num(fut).astype(np.float32), mask], axis=-1)
        train, val, cal = group == 0, group == 1, group == 2
        if val.sum() < 8 or train.sum() < 8:
            train = group >= 0
            val = np.zeros(len(X), dtype=bool)
            cal = np.zeros(len(X), dtype=bool)
        self.model_ = self._build()
        self.model_.compile(optimizer=keras.optimizers.Adam(self.learning_rate, clipnorm=1.0),
                            loss=self._pinball)
        timer: Any = _EpochTimer()
        callbacks = [timer]
        if val.any():
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=self.patience, restore_best_weights=True))
        hist = self.model_.fit(
            X[train], Y[train], batch_size=self.batch_size, epochs=self.epochs, shuffle=True,
            validation_data=(X[val], Y[val]) if val.any() else None,
            callbacks=callbacks, verbose=self.verbose,
        )
        self.history_ = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        self.epoch_seconds_ = timer.seconds
        self.cqr_ = np.zeros(self.horizon)
        if self.calibrate and cal.sum() >= 20:
            pred = self._raw_predict(X[cal])
            y = fut[cal]
            scores = np.maximum(pred[..., 0] - y, y - pred[..., 2])  # (n, H), NaN where missing
            for k in range(self.horizon):
                sc = scores[:, k][~np.isnan(scores[:, k])]
                if len(sc) >= 10:
                    level = min(1.0, 0.8 * (1 + 1 / len(sc)))
                    self.cqr_[k] = float(np.quantile(sc, level))
        self.n_train_windows_ = int(train.sum())
        self.n_val_windows_ = int(val.sum())
        self.n_cal_windows_ = int(cal.sum())

    def _groups(self, ends: np.ndarray) -> np.ndarray:
        """Per training window of one series (``ends`` ascending): 0 train, 1 early
        stopping, 2 calibration, -1 dropped (a gap). The last ``val_fraction`` of windows
        calibrate, the ``val_fraction`` before them stop early; a window ending within a
        horizon before the next group's first window is dropped, so its targets never
        fall on that group's days. A series too short for three groups only trains."""
        n, H = len(ends), self.horizon
        k = max(int(np.ceil(n * self.val_fraction)), H + 7)  # a group outlives its gap
        out = np.zeros(n, dtype=np.int64)
        if n < 2 * k + 2 * H + 8:  # too short to split: every window trains
            return out
        cal0, es0 = ends[n - k], ends[n - 2 * k]
        out[ends >= es0] = 1
        out[ends >= cal0] = 2
        out[(ends < cal0) & (ends >= cal0 - H)] = -1
        out[(ends < es0) & (ends >= es0 - H)] = -1
        return out

    def _raw_predict(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 0:
            return np.zeros((0, self.horizon, 3), np.float32)
        return np.asarray(self.model_.predict(X, batch_size=4096, verbose=0))

    def _predict(self, histories: list[History], horizon: int) -> Prediction:
        if self.model_ is None:
            raise RuntimeError("the LSTM is not fitted")
        ends = [np.array([len(h.y) - 1]) for h in histories]
        X, mu, s, _ = self._windows(histories, ends)
        # the forecast windows and the local widening's past windows in one model call
        past = self._past_windows(histories)
        raw_all = self._raw_predict(X if past is None else np.concatenate([X, past[0]]))
        raw = raw_all[:len(X), :horizon].astype(np.float64)
        widen = np.zeros(len(histories)) if past is None else \
            self._widening(raw_all[len(X):].astype(np.float64), *past[1:])
        q = self.cqr_[:horizon][None, :] + widen[:, None]
        p10 = raw[..., 0] - q
        p50 = raw[..., 1]
        p90 = raw[..., 2] + q
        scale = lambda v: mu[:, None] + s[:, None] * v  # noqa: E731
        out = Prediction(scale(p50), scale(p10), scale(p50), scale(p90))
        # A history with no observed day in its window has no level: no forecast.
        none = np.isnan(mu)
        for arr in (out.mean, out.p10, out.p50, out.p90):
            arr[none] = np.nan
        return out

    def _local_widening(self, histories: list[History]) -> np.ndarray:
        """Per patient: how much wider (scaled units, >= 0) the interval must be to
        cover this patient's own recent outcomes (local conformal adjustment).

        The model forecasts from ``local_windows`` past origins of each history (every
        other day, outcomes already in the history, nothing after the origin used); the
        conformity scores minus the global calibration give an excess whose 80%
        quantile widens that patient's interval. Patients whose days swing more than
        the training cohort's get honest intervals; others keep the global width.
        """
        past = self._past_windows(histories)
        if past is None:
            return np.zeros(len(histories))
        return self._widening(self._raw_predict(past[0]).astype(np.float64), *past[1:])

    def _past_windows(self, histories: list[History]):
        """The local widening's inputs: (X, future targets, windows per history), or None."""
        if not self.local_windows:
            return None
        ends = []
        for h in histories:
            T = len(h.y)
            e = T - 2 - 2 * np.arange(self.local_windows)
            ends.append(e[e >= self.window // 2])
        counts = np.array([len(e) for e in ends])
        if counts.sum() == 0:
            return None
        X, _, _, fut = self._windows(histories, ends)
        return X, fut, counts

    def _widening(self, raw: np.ndarray, fut: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """The widening of each history from the model's forecasts at its past windows."""
        H = self.horizon
        excess = np.maximum(raw[..., 0] - fut, fut - raw[..., 2]) - self.cqr_[None, :H]
        return excess_quantiles(excess.reshape(-1), counts * H)

    # ------------------------------------------------------------------ artifacts

    def to_bytes(self) -> bytes:
        """Config, learned statistics and weights in one .npz (no pickle, no code)."""
        state = {
            "config": self.get_config(), "level": list(self.level_), "min_scale": self.min_scale_,
            "cqr": [float(v) for v in self.cqr_],
        }
        weights = self.model_.get_weights()
        buf = io.BytesIO()
        np.savez(buf, state=np.frombuffer(json.dumps(state).encode(), dtype=np.uint8),
                 **{f"w{i}": w for i, w in enumerate(weights)})
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> LSTMForecaster:
        data = np.load(io.BytesIO(blob), allow_pickle=False)
        state = json.loads(bytes(data["state"]).decode())
        model = cls(**state["config"])
        model.level_ = tuple(state["level"])
        model.min_scale_ = float(state["min_scale"])
        model.cqr_ = np.asarray(state["cqr"], dtype=np.float64)
        model.model_ = model._build()
        n = len([k for k in data.files if k.startswith("w")])
        model.model_.set_weights([data[f"w{i}"] for i in range(n)])
        return model


def _epoch_timer_base():
    import keras

    return keras.callbacks.Callback


class _EpochTimer:
    """Seconds per epoch (a Keras callback, created lazily to keep TF out of imports)."""

    def __new__(cls):
        base = _epoch_timer_base()

        class Timer(base):
            def __init__(self):
                super().__init__()
                self.seconds: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._t)

        return Timer()


def nanmedian_rows(a: np.ndarray) -> np.ndarray:
    """``np.nanmedian(a, axis=1)`` (the same values; NaN for a row with none) without
    numpy's per-row path for short rows: one sort, then the middle one or two."""
    ordered = np.sort(a, axis=1)  # NaN last
    n = np.count_nonzero(~np.isnan(a), axis=1)
    lo = np.take_along_axis(ordered, np.maximum((n - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(ordered, np.maximum(n // 2, 0)[:, None], axis=1)[:, 0]
    out = (lo + hi) / 2
    out[n == 0] = np.nan
    return out


def excess_quantiles(flat: np.ndarray, sizes: np.ndarray, min_scores: int = 10) -> np.ndarray:
    """Per group of ``flat`` (consecutive runs of ``sizes``): max(0, the finite-sample
    80% quantile ``min(1, 0.8 (1 + 1/n))`` of its n non-NaN scores), 0 with fewer than
    ``min_scores``. The same values as ``np.quantile`` group by group (linear method),
    computed for all groups at once: the groups are padded into rows and sorted."""
    n_groups = len(sizes)
    out = np.zeros(n_groups)
    if n_groups == 0 or sizes.sum() == 0:
        return out
    width = int(sizes.max())
    row = np.repeat(np.arange(n_groups), sizes)
    col = np.arange(len(flat)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    padded = np.full((n_groups, width), np.nan)
    padded[row, col] = flat
    padded.sort(axis=1)  # NaN last
    n = np.count_nonzero(~np.isnan(padded), axis=1)
    ok = n >= min_scores
    if not ok.any():
        return out
    a, n = padded[ok], n[ok].astype(np.float64)
    q = np.minimum(1.0, 0.8 * (1 + 1 / n))
    # numpy's linear method, step by step (virtual index, neighbours, gamma, lerp)
    virtual = (n - 1) * q
    below = np.floor(virtual)
    above = below + 1
    top = n - 1
    at_top = virtual >= top
    below[at_top] = top[at_top]
    above[at_top] = top[at_top]
    at_bottom = virtual < 0
    below[at_bottom] = 0
    above[at_bottom] = 0
    above = np.minimum(above, top)
    gamma = virtual - below
    lo = np.take_along_axis(a, below.astype(np.int64)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(a, above.astype(np.int64)[:, None], axis=1)[:, 0]
    diff = hi - lo
    value = lo + diff * gamma
    late = gamma >= 0.5
    value[late] = hi[late] - diff[late] * (1 - gamma[late])
    out[ok] = np.maximum(0.0, value)
    return out
