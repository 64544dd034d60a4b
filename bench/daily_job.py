"""Daily-job benchmark: ``python -m bench.daily_job [--json] [--patients N]``.

Times the daily forecast job as Celery runs it (``forecasting.tasks.forecast_all``: the
rollup reads, the daily features, the promoted model, the row writes) for 10,000
patients on a private PostgreSQL, and the model's inference alone on the same histories.

The cohort is synthetic and cheap to make: each patient's nightly resting heart rate
(a personal level, an AR(1) day-to-day wander, a weekend lift, a few multi-day illness
spikes, unworn nights, later starters) is written as the hourly heart-rate rollup of
the night hours (00:00-05:59, UTC patients) that the live path reads; no steps, HRV or
sleep rows, so only ``resting_hr`` is forecast. The promoted model is an LSTM trained
here for a few epochs on part of the cohort (its inference cost does not depend on how
well it learned). ``bench.forecast`` runs this module in a child process.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from bench.common import database_environment

NIGHT_HOURS = 6  # hourly rows per patient-night: 00:00-05:59
_INSERT = """
INSERT INTO samples_1h (patient_id, metric, bucket, n, total, vmin, vmax)
SELECT d.p, %(metric)s, %(first)s::timestamptz + d.k * INTERVAL '1 day' + h * INTERVAL '1 hour',
       60, 60 * v.m, v.m - 6 - 4 * random(), v.m + 6 + 6 * random()
FROM unnest(%(p)s::bigint[], %(k)s::int[], %(v)s::float8[]) AS d(p, k, v)
CROSS JOIN generate_series(0, %(last_hour)s) AS h
CROSS JOIN LATERAL (SELECT d.v + CASE WHEN h = 0 THEN 4 ELSE 0 END + 1.5 * (random() - 0.5) AS m) AS v
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def synthetic_resting_hr(n: int, days: int, seed: int = 0) -> np.ndarray:
    """(n, days) nightly resting heart rate in bpm, NaN on unworn nights (vectorised)."""
    rng = np.random.default_rng(seed)
    level = np.clip(rng.normal(61, 7, n), 44, 88)[:, None]
    shocks = rng.normal(0, 1.2, (n, days))
    wander = np.empty((n, days))
    wander[:, 0] = shocks[:, 0] / np.sqrt(1 - 0.8**2)
    for d in range(1, days):  # AR(1): a loop over days, vectorised over patients
        wander[:, d] = 0.8 * wander[:, d - 1] + shocks[:, d]
    weekend = np.where(np.arange(days) % 7 >= 5, 1.0, 0.0)[None, :]
    onset = rng.random((n, days)) < 1 / 90  # about one illness in three months
    ill = np.zeros((n, days))
    for lag, lift in enumerate((5.0, 7.0, 6.0, 4.0, 2.0)):
        ill[:, lag:] += onset[:, : days - lag] * lift
    y = level + wander + weekend + ill
    y[rng.random((n, days)) < 0.08] = np.nan  # unworn nights
    late = rng.random(n) < 0.2  # a fifth joined later: 14 days of history or more
    start = np.where(late, rng.integers(0, days - 14, n), 0)
    y[np.arange(days)[None, :] < start[:, None]] = np.nan
    return y


def load_cohort(n: int, days: int, end_day: date, seed: int = 0) -> list[int]:
    """Create ``n`` UTC patients and their night-hour heart-rate rollups for the
    ``days`` days that end with ``end_day``; returns the patient ids."""
    from django.db import connection

    from ingest.schema import METRICS
    from ingest.storage import installed_dialect

    y = synthetic_resting_hr(n, days, seed)
    first = end_day - timedelta(days=days - 1)
    with connection.cursor() as cur:
        if installed_dialect(cur) != "postgres":
            raise RuntimeError("bench.daily_job writes samples_1h as a table: it needs plain PostgreSQL, "
                               "not TimescaleDB (there the hourly rollup is a continuous aggregate)")
        cur.execute("INSERT INTO care_patient (display_name, timezone, active, created_at) "
                    "SELECT 'bench ' || g, 'UTC', true, now() FROM generate_series(1, %s) AS g RETURNING id", [n])
        ids = sorted(r[0] for r in cur.fetchall())
        # Bulk load without the primary key, then build it once (same table afterwards).
        cur.execute("ALTER TABLE samples_1h DROP CONSTRAINT samples_1h_pkey")
        for lo in range(0, n, 1000):
            block = y[lo: lo + 1000]
            rows, cols = np.nonzero(~np.isnan(block))
            cur.execute(_INSERT, {"metric": METRICS["heart_rate"].code, "first": f"{first.isoformat()}T00:00:00+00:00",
                                  "p": [ids[lo + r] for r in rows.tolist()], "k": cols.tolist(),
                                  "v": block[rows, cols].tolist(), "last_hour": NIGHT_HOURS - 1})
        cur.execute("ALTER TABLE samples_1h ADD CONSTRAINT samples_1h_pkey PRIMARY KEY (patient_id, metric, bucket)")
        cur.execute("ANALYZE samples_1h")
        cur.execute("ANALYZE care_patient")
        cur.execute("SELECT count(*) FROM samples_1h")
        log(f"cohort: {n} patients, {cur.fetchone()[0]} hourly rows over {days} days")
    return ids


def promote_lstm(ids: list[int], end_day: date, train_patients: int, epochs: int):
    """Train an LSTM on ``train_patients`` patients' histories (read the live way) and
    promote it as the resting heart rate model."""
    from django.conf import settings

    from care.models import Patient
    from forecasting import registry, service
    from forecasting.features import make_histories
    from forecasting.forecasters import make

    patients = list(Patient.objects.filter(pk__in=ids[:train_patients]))
    feats = service.patient_features(patients, end_day, settings.FORECAST_HISTORY_DAYS)
    series = make_histories(feats, "resting_hr", min_observed=14)
    model = make("lstm", target="resting_hr", epochs=epochs, units=settings.FORECAST_LSTM_UNITS)
    t0 = time.perf_counter()
    model.fit(list(series.values()))
    log(f"LSTM trained on {len(series)} series in {time.perf_counter() - t0:.1f} s ({epochs} epochs)")
    mv = registry.register("resting_hr", model, metrics={}, train_start=None, train_end=end_day,
                           n_series=len(series))
    service._promote_unscored(mv)
    return mv


def run(args: argparse.Namespace) -> dict:
    import django

    django.setup()
    from django.conf import settings

    from forecasting import registry, service, tasks
    from forecasting.features import make_histories
    from forecasting.models import Forecast

    end_day = service.last_complete_day()
    report: dict = {"patients": args.patients, "history_days": args.days,
                    "hourly_rows_per_patient_night": NIGHT_HOURS, "cpus": os.cpu_count()}
    t0 = time.perf_counter()
    ids = load_cohort(args.patients, args.days, end_day)
    report["load_cohort_s"] = round(time.perf_counter() - t0, 1)
    mv = promote_lstm(ids, end_day, args.train_patients, args.epochs)

    # 1. the daily job, end to end, as the Celery task runs it (a fresh model cache: the
    # worker loads the promoted version once, as after a restart).
    registry._load.cache_clear()
    profiler = None
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    out = tasks.forecast_all.run(["resting_hr"])
    report["daily_job_seconds_10k"] = round(time.perf_counter() - t0, 2)
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(args.profile)
    rows = Forecast.objects.filter(metric="resting_hr", issued_on=end_day).count()
    forecast_patients = Forecast.objects.filter(issued_on=end_day).values("patient").distinct().count()
    report.update(forecast_rows=rows, patients_forecast=forecast_patients, task_result=out)
    log(f"daily job: {report['daily_job_seconds_10k']} s, {rows} rows for {forecast_patients} patients")

    # 2. the parts: the feature read alone, then the model alone on those histories.
    patients = service.active_patients()
    model = registry.load(mv)
    history_days = max(getattr(model, "window", 28), settings.FORECAST_HISTORY_DAYS)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    series: dict = {}
    for chunk in service._chunks(patients, 1000):
        series.update(make_histories(service.patient_features(chunk, end_day, history_days),
                                     "resting_hr", min_observed=3))
    report["features_seconds_10k"] = round(time.perf_counter() - t0, 2)
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(args.profile)
    histories = [series[i] for i in sorted(series)]
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
    t0 = time.perf_counter()
    pred = model.predict(histories, service.HORIZON)
    report["inference_seconds_10k"] = round(time.perf_counter() - t0, 2)
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(args.profile)
    report["inference_series"] = len(histories)
    report["inference_finite"] = int(np.isfinite(pred.mean).all(axis=1).sum())
    log(f"features alone: {report['features_seconds_10k']} s; inference alone: "
        f"{report['inference_seconds_10k']} s for {len(histories)} series")
    return report


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=120, help="days of history per patient")
    ap.add_argument("--train-patients", type=int, default=500, help="patients the LSTM trains on")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="profile the daily job and print its N costliest calls (cumulative)")
    args = ap.parse_args(argv)
    if args.patients < 1 or args.days < 28:
        ap.error("--patients must be at least 1 and --days at least 28")
    with tempfile.TemporaryDirectory(prefix="bench-daily-job-") as tmp, \
            database_environment("bench_daily_job", Path(tmp)) as env:
        os.environ.update(env)
        report = run(args)
    print(f"daily job for {args.patients} patients: {report['daily_job_seconds_10k']} s "
          f"(inference alone {report['inference_seconds_10k']} s, features alone "
          f"{report['features_seconds_10k']} s)", flush=True)
    if args.json:
        print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
