"""LSTM epoch and inference time per device, on whatever Keras 3 backend is installed.

    KERAS_BACKEND=jax python -m bench.lstm_device [--patients 200] [--days 180] [--json]

``bench.forecast`` times the LSTM under TensorFlow (CPU here, GPU where TensorFlow sees
one). A lent GPU machine may have no TensorFlow (its wheel is far over what can be
carried there) but has JAX: this script runs the same model code (pure Keras 3) on
that backend and times, in one run, an epoch and inference for 10,000 patients on the
CPU (``JAX_PLATFORMS=cpu``) and on the GPU. Needs no Django and no database.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time


def device_label() -> str:
    """The device Keras will train on (run with JAX_PLATFORMS=cpu for the CPU figure:
    Keras picks the cuDNN kernel whenever a GPU is visible, so one process per device)."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "jax":
        import jax

        d = jax.devices()[0]
        return f"{d.platform}:{d.device_kind}"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"gpu:{gpus[0].name}" if gpus else "cpu"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--cache", help="pickle of the simulated features, reused between runs")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    import keras

    from forecasting.features import make_histories
    from forecasting.forecasters import make
    from forecasting.replay import simulated_features

    t0 = time.perf_counter()
    if args.cache and os.path.exists(args.cache):
        with open(args.cache, "rb") as fh:
            features = pickle.load(fh)
    else:
        features = simulated_features(args.patients, args.days)
        if args.cache:
            with open(args.cache, "wb") as fh:
                pickle.dump(features, fh)
    series = make_histories(features, "resting_hr")
    train = [h.cut(len(h.y) - 14) for h in series.values()]
    log(f"{len(train)} series built in {time.perf_counter() - t0:.1f}s; backend {keras.backend.backend()}")
    base = list(series.values())
    patients = [base[i % len(base)].cut(len(base[i % len(base)].y) - 1 - (i // len(base)) % 7)
                for i in range(10_000)]
    report: dict = {"backend": keras.backend.backend(), "series": len(train)}
    label = device_label()
    model = make("lstm", target="resting_hr", epochs=args.epochs, patience=99, calibrate=False, augment=0)
    model.fit(train)
    report["device"] = label
    report["epoch_s"] = [round(s, 3) for s in model.epoch_seconds_]
    report["train_windows"] = model.n_train_windows_
    model.local_windows = 0
    model.predict(patients[:64], 14)  # warm-up (tracing / compilation)
    t1 = time.perf_counter()
    model.predict(patients, 14)
    report["inference_10k_s"] = round(time.perf_counter() - t1, 3)
    log(f"{label}: epochs {report['epoch_s']} s, inference 10k {report['inference_10k_s']} s")
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
