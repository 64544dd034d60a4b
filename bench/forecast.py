"""Forecasting benchmark: ``python -m bench.forecast [--json] [--small]``.

1. The backtest table on the real recordings in ../shared/data (resting heart rate,
   every model; the LSTM also learns from a simulated cohort).
2. The backtest table on a simulated cohort (default 1,000 patients over a year).
3. LSTM training time per epoch on the CPU, and on the GPU too when TensorFlow sees
   one, measured in the same run on the same windows.
4. Inference time for 10,000 patients (window building plus the model) on the CPU,
   and on the GPU when there is one.
5. The daily job for 10,000 patients with its database reads and writes
   (``daily_job_seconds_10k``) and the model's inference alone on the same histories
   (``inference_seconds_10k``), on a private PostgreSQL: ``bench.daily_job``, run in a
   child process. ``--daily-job`` runs only this part; ``--skip-daily-job`` leaves it out.

``--small`` (200 patients, 180 days, 3 epochs) fits a GPU session of about 5 minutes.
Timings are wall-clock on a shared machine: compare the CPU and GPU figures of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
REAL = ("stanford-covid19-phase1", "stanford-covid19-phase2")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ap.add_argument("--small", action="store_true", help="200 patients x 180 days, 3 epochs")
    ap.add_argument("--sim-patients", type=int, default=1000)
    ap.add_argument("--sim-days", type=int, default=365)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--scored-series", type=int, default=100,
                    help="simulated series scored in the backtest (statsmodels refits per origin)")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--real-only", action="store_true", help="stop after the real recordings' table")
    ap.add_argument("--plots", metavar="DIR", help="write the real backtest's charts (PNG) here")
    ap.add_argument("--daily-job", action="store_true", help="only time the daily job (10,000 patients)")
    ap.add_argument("--skip-daily-job", action="store_true", help="leave the daily job's timing out")
    args = ap.parse_args(argv)
    if args.daily_job:
        report = daily_job()
        if args.json:
            print(json.dumps(report, indent=2))
        return report
    if args.small:
        args.sim_patients, args.sim_days, args.epochs = 200, 180, 3
        args.scored_series = min(args.scored_series, 40)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import tensorflow as tf

    from forecasting import replay
    from forecasting.backtest import backtest
    from forecasting.features import make_histories
    from forecasting.forecasters import make

    gpus = tf.config.list_physical_devices("GPU")
    report: dict = {"gpu": [g.name for g in gpus], "sim_patients": args.sim_patients,
                    "sim_days": args.sim_days, "epochs": args.epochs}
    log(f"TensorFlow {tf.__version__}; GPUs visible: {len(gpus)}")

    # -- the simulated cohort (features only; minute data is simulated a chunk at a time)
    t0 = time.perf_counter()
    sim = replay.simulated_features(args.sim_patients, args.sim_days, progress=True)
    report["sim_features_s"] = round(time.perf_counter() - t0, 1)
    sim_series = make_histories(sim, "resting_hr")

    # -- 1. real recordings
    if not args.skip_real and Path(args.data).exists():
        log("backtest on the real recordings ...")
        feats = replay.features_from_files([str(Path(args.data) / d) for d in REAL if (Path(args.data) / d).exists()])
        pretrain = dict(list(sim.items())[:100])
        real, _ = replay.run(feats, "resting_hr", extra_training=pretrain,
                             lstm={"epochs": max(args.epochs, 10)}, progress=True)
        print(real.table(), flush=True)
        if args.plots:
            from forecasting.plots import plot_backtest

            for path in plot_backtest(real, make_histories(feats, "resting_hr"), args.plots):
                log(f"wrote {path}")
        report["real"] = real.to_json()
    elif not args.skip_real:
        log(f"no recordings at {args.data}: real backtest skipped")
    if args.real_only:
        if args.json:
            print(json.dumps(report, indent=2))
        return report

    # -- 2. simulated cohort backtest: the LSTM learns from every patient's history
    # before the origins; all models are scored on the same series and origins.
    ids = list(sim_series)
    rng = np.random.default_rng(0)
    scored_ids = sorted(rng.choice(len(ids), size=min(args.scored_series, len(ids)), replace=False))
    scored = {ids[i]: sim_series[ids[i]] for i in scored_ids}
    rest = [sim_series[i] for j, i in enumerate(ids) if j not in set(scored_ids)]
    cut = int(args.sim_days * 0.85)
    extra = [h.cut(cut) for h in rest]
    models = {k: make(k) for k in ("naive", "seasonal_naive", "ets", "sarimax")}
    models["lstm"] = make("lstm", target="resting_hr", epochs=args.epochs, verbose=2)
    log(f"backtest on the simulated cohort: {len(scored)} scored series, LSTM trained on "
        f"{len(scored) + len(extra)} ...")
    sim_result = backtest(models, scored, "resting_hr", test_fraction=0.15, step=7,
                          extra_training=extra, progress=True)
    print(sim_result.table(), flush=True)
    report["simulated"] = sim_result.to_json()
    lstm: Any = models["lstm"]
    report["train_windows"] = lstm.n_train_windows_
    report["cpu_or_default_epoch_s"] = [round(s, 2) for s in lstm.epoch_seconds_]

    # -- 3. epoch time per device on the same windows
    train = [h.cut(cut) for h in sim_series.values()]
    devices = ["/CPU:0"] + (["/GPU:0"] if gpus else [])
    report["epoch_s"] = {}
    for dev in devices:
        with tf.device(dev):
            m: Any = make("lstm", target="resting_hr", epochs=2, patience=99, calibrate=False, augment=0)
            m.fit(train)
        report["epoch_s"][dev] = [round(s, 2) for s in m.epoch_seconds_]
        log(f"epoch time on {dev}: {m.epoch_seconds_} s ({m.n_train_windows_} windows)")

    # -- 4. inference for 10,000 patients
    base = list(sim_series.values())
    patients = [base[i % len(base)].cut(len(base[i % len(base)].y) - 1 - (i // len(base)) % 7)
                for i in range(10_000)]
    # Two figures: the model with its global calibration only, and with each patient's
    # local interval widening (forecasts from 8 past origins per patient, 9x the windows).
    report["inference_10k_s"] = {}
    local = lstm.local_windows
    for dev in devices:
        for lw in (0, local):
            lstm.local_windows = lw
            with tf.device(dev):
                lstm.predict(patients[:64], 14)  # warm-up (graph tracing)
                t0 = time.perf_counter()
                pred = lstm.predict(patients, 14)
                secs = time.perf_counter() - t0
            key = f"{dev} local_windows={lw}"
            report["inference_10k_s"][key] = round(secs, 2)
            log(f"inference for 10,000 patients on {key}: {secs:.2f} s "
                f"({int(np.isfinite(pred.mean).all(axis=1).sum())} with forecasts)")
    lstm.local_windows = local

    print(f"epoch seconds: {report['epoch_s']}", flush=True)
    print(f"inference for 10,000 patients (s): {report['inference_10k_s']}", flush=True)
    if not args.skip_daily_job:
        job = daily_job()
        report["daily_job"] = job
        for key in ("daily_job_seconds_10k", "inference_seconds_10k"):
            report[key] = job[key]
    if args.json:
        print(json.dumps(report, indent=2))
    return report


def daily_job() -> dict:
    """``bench.daily_job`` in a child process (it sets up Django on its own private
    database); its summary line goes to stdout, its JSON report is returned."""
    import subprocess

    log("the daily job for 10,000 patients (bench.daily_job) ...")
    done = subprocess.run([sys.executable, "-m", "bench.daily_job", "--json"], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True, check=True)
    lines = done.stdout.splitlines()
    start = lines.index("{")
    print("\n".join(lines[:start]), flush=True)
    return json.loads("\n".join(lines[start:]))


if __name__ == "__main__":
    main()
