"""The live path: features from the rollups, nightly training, daily forecasts.

Called by the Celery tasks (forecasting/tasks.py) and the management commands. Only
counts, ids and model versions are logged, never a value of anyone's health data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from care.models import Patient
from forecasting import registry
from forecasting.backtest import backtest
from forecasting.features import TARGETS, make_histories
from forecasting.forecasters import make
from forecasting.models import Forecast, ModelVersion
from forecasting.rollups import daily_from_db

log = logging.getLogger(__name__)
HORIZON = 14


class NoData(RuntimeError):
    """Not enough data to train or forecast."""


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i: i + size]


def last_complete_day(now: datetime | None = None) -> date:
    return ((now or datetime.now(UTC)) - timedelta(days=1)).date()


def patient_features(patients: list[Patient], end_day: date, days: int) -> dict:
    """Daily features of these patients over the ``days`` days that end with ``end_day``
    (inclusive, each patient's local calendar), on a calendar padded to ``end_day``."""
    start_day = end_day - timedelta(days=days - 1)
    return daily_from_db({p.pk: p.timezone for p in patients}, start_day, end_day)


def active_patients() -> list[Patient]:
    return list(Patient.objects.filter(active=True).order_by("pk"))


# --------------------------------------------------------------------- training

@dataclass
class TrainOutcome:
    metric: str
    version: ModelVersion
    promoted: bool
    scores: dict  # model name -> scores at 7 days
    reused: bool = False


def lstm_config(**overrides) -> dict:
    config = {"epochs": settings.FORECAST_LSTM_EPOCHS, "units": settings.FORECAST_LSTM_UNITS}
    config.update(overrides)
    return config


def train_metric(metric: str, *, end_day: date | None = None, days: int | None = None,
                 holdout_days: int | None = None, lstm: dict | None = None,
                 candidate_kind: str = "lstm", progress: bool = False) -> TrainOutcome:
    """Train a candidate (an LSTM unless ``candidate_kind`` says otherwise) for ``metric`` on every active patient's data up to a cut,
    backtest it on the days after the cut beside the promoted version and the
    baselines, register it, and promote it only if it beats the promoted version.

    The cut is ``holdout_days`` before ``end_day`` (a third of the data when there is
    less than three times that): the candidate never sees the days it is scored on,
    and the promoted version (trained on an earlier night, so with an earlier cut) has
    not seen them either. With no promoted version yet, the candidate must beat the
    best baseline; if it does not, or if there is too little history to train it (a
    fresh install), that baseline is registered and promoted, so that every patient
    gets a forecast. When nothing can be scored yet, the seasonal naive forecast (the
    yardstick) is the first version.
    """
    if metric not in TARGETS:
        raise ValueError(f"unknown metric {metric!r}")
    end_day = end_day or last_complete_day()
    days = days or settings.FORECAST_TRAIN_DAYS
    patients = active_patients()
    feats: dict = {}
    chunks = list(_chunks(patients, 500))
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=f"features {metric}", unit="chunk")
    for chunk in chunks:
        feats.update(patient_features(chunk, end_day, days))
    series = make_histories(feats, metric, min_observed=7)
    if not series:
        raise NoData(f"no patient has 7 days of {metric}")
    first = min(int(np.flatnonzero(~np.isnan(h.y))[0]) for h in series.values())
    span = days - first
    holdout = min(holdout_days or settings.FORECAST_HOLDOUT_DAYS, max(7, span // 3))
    cut_day = end_day - timedelta(days=holdout)
    # The backtest trains on every series up to and including its first origin, the
    # day after cut_day (the registry's train_end names that day).
    existing = (ModelVersion.objects.filter(metric=metric, train_end=cut_day + timedelta(days=1))
                .order_by("-version").first())
    if existing is not None:  # idempotent: this night's model is already trained
        log.info("%s already trained up to %s: %s", metric, cut_day, existing.label)
        return TrainOutcome(metric, existing, existing.promoted,
                            existing.metrics.get("compared", {}), reused=True)
    candidate = make(candidate_kind, target=metric, **lstm_config(**(lstm or {}))) \
        if candidate_kind == "lstm" else make(candidate_kind)
    return compare_and_promote(metric, series, candidate, holdout=holdout, days=days,
                               train_start=end_day - timedelta(days=days - 1), progress=progress)


def compare_and_promote(metric: str, series: dict, candidate_model, *, holdout: int, days: int,
                        train_start: date | None = None, progress: bool = False) -> TrainOutcome:
    """Backtest ``candidate_model`` (fitted here, on each series up to its first origin)
    beside the promoted version's STORED model (loaded, never refitted) and the
    baselines, on the same origins of the last ``holdout`` days; register the candidate
    and promote it only if its 7-day MASE is strictly lower than the stored version's.

    The promoted version must have stopped training before the first scored origin, so
    that neither model has seen a scored day; otherwise it cannot be judged fairly on
    tonight's days and is kept (the candidate is registered, not promoted).
    """
    current = registry.promoted(metric)
    models: dict[str, Any] = {"candidate": candidate_model}
    if current is not None:
        models["current"] = registry.load(current)
    for name in settings.FORECAST_BASELINES:
        models[name] = make(name)
    options: dict[str, Any] = {"horizon": HORIZON, "test_fraction": holdout / days, "min_history": 7,
                               "progress": progress}
    try:
        result = backtest(models, series, metric, **options)
    except ValueError as exc:  # the LSTM found no training windows: too little history
        log.info("%s: no candidate tonight (%s)", metric, exc)
        models.pop("candidate")
        result = backtest(models, series, metric, **options)
    scores = {name: result.scores(name) for name in models}
    train_end = None if result.train_end is None else result.train_end.astype(object)
    candidate = None
    if "candidate" in models:
        candidate = registry.register(
            metric, candidate_model, metrics={**scores["candidate"], "compared": scores,
                                              "epoch_seconds": getattr(candidate_model, "epoch_seconds_", [])},
            train_start=train_start, train_end=train_end, n_series=len(series),
        )
    if current is not None:
        if candidate is None:
            return TrainOutcome(metric, current, True, scores, reused=True)
        first_scored = result.train_end
        if current.train_end is not None and first_scored is not None \
                and np.datetime64(current.train_end, "D") > first_scored:
            log.info("kept %s: it trained past tonight's first origin", current.label)
            return TrainOutcome(metric, candidate, False, scores)
        won = registry.promote_if_better(candidate, scores["current"]["mase"])
        return TrainOutcome(metric, candidate, won, scores)
    scored = [n for n in settings.FORECAST_BASELINES if scores[n]["mase"] is not None]
    best = min(scored, key=lambda n: scores[n]["mase"], default=None)
    best_score = scores[best]["mase"] if best else None
    if candidate is not None and best is not None and registry.promote_if_better(candidate, best_score):
        return TrainOutcome(metric, candidate, True, scores)
    first_model = models[best] if best else make("seasonal_naive")
    with transaction.atomic():
        fallback = registry.register(
            metric, first_model, metrics={**(scores[best] if best else {}), "compared": scores},
            train_start=None, train_end=train_end, n_series=len(series))
        if best is not None:
            registry.promote_if_better(fallback, None)
        else:
            _promote_unscored(fallback)
    return TrainOutcome(metric, fallback, True, scores)


def _promote_unscored(mv: ModelVersion) -> None:
    """The very first version when nothing can be scored yet (no promoted one exists)."""
    with transaction.atomic():
        if not ModelVersion.objects.select_for_update().filter(metric=mv.metric, promoted=True).exists():
            ModelVersion.objects.filter(pk=mv.pk).update(promoted=True, promoted_at=timezone.now())
            mv.promoted = True


# -------------------------------------------------------------------- forecasting

def forecast_metric(metric: str, *, end_day: date | None = None, patients: list[Patient] | None = None,
                    progress: bool = False, chunk_size: int = 1000) -> int:
    """Forecast the next 14 days for every active patient with the promoted version.

    Idempotent: the rows of one issue date are replaced, never duplicated. Returns the
    number of forecast rows written.
    """
    mv = registry.promoted(metric)
    if mv is None:
        raise NoData(f"no promoted model for {metric}: run train_forecasters first")
    model = registry.load(mv)
    end_day = end_day or last_complete_day()
    patients = active_patients() if patients is None else patients
    history_days = max(getattr(model, "window", 28), settings.FORECAST_HISTORY_DAYS)
    written = 0
    chunks = list(_chunks(patients, chunk_size))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(patients), desc=f"forecast {metric}", unit="patient")
    for chunk in chunks:
        feats = patient_features(chunk, end_day, history_days)
        series = make_histories(feats, metric, min_observed=3)
        ids = list(series)
        if ids:
            pred = model.predict([series[i] for i in ids], HORIZON)
            written += _store(metric, mv, ids, end_day, pred)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    keep_from = end_day - timedelta(days=settings.FORECAST_KEEP_DAYS)
    pruned, _ = Forecast.objects.filter(metric=metric, issued_on__lt=keep_from).delete()
    log.info("forecast %s with %s: %d rows for %d patients (%d old rows pruned)",
             metric, mv.label, written, len(patients), pruned)
    return written


_UPSERT = """
INSERT INTO forecasting_forecast AS f (patient_id, metric, issued_on, target_date, horizon_days,
                                       mean, p10, p50, p90, model_version_id, created_at)
SELECT patient_id, %s, %s, target_date, horizon_days, mean, p10, p50, p90, %s, %s FROM forecast_rows
ON CONFLICT (patient_id, metric, issued_on, target_date) DO UPDATE SET
    horizon_days = EXCLUDED.horizon_days, mean = EXCLUDED.mean, p10 = EXCLUDED.p10,
    p50 = EXCLUDED.p50, p90 = EXCLUDED.p90, model_version_id = EXCLUDED.model_version_id,
    created_at = EXCLUDED.created_at
"""


def _store(metric: str, mv: ModelVersion, ids: list, end_day: date, pred) -> int:
    """Upsert the forecast rows of one issue date (a day ahead with any non-finite value
    is left out): COPY into a temporary table, then one INSERT ... ON CONFLICT, so
    10,000 patients' 140,000 rows take one round trip rather than 140,000 objects."""
    stack = np.stack([pred.mean, pred.p10, pred.p50, pred.p90], axis=-1)[:, :HORIZON]  # (n, H, 4)
    who, ahead = np.nonzero(np.isfinite(stack).all(axis=-1))
    if len(who) == 0:
        return 0
    values = stack[who, ahead].tolist()
    patients = np.asarray([int(i) for i in ids], dtype=np.int64)[who].tolist()
    targets = [end_day + timedelta(days=h + 1) for h in range(HORIZON)]
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE forecast_rows (patient_id bigint, target_date date, "
                    "horizon_days smallint, mean float8, p10 float8, p50 float8, p90 float8) ON COMMIT DROP")
        with cur.copy("COPY forecast_rows FROM STDIN") as cp:
            for pid, h, (mean, p10, p50, p90) in zip(patients, ahead.tolist(), values, strict=True):
                cp.write_row((pid, targets[h], h + 1, mean, p10, p50, p90))
        cur.execute(_UPSERT, [metric, end_day, mv.pk, timezone.now()])
    return len(who)
