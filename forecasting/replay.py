"""Backtests on recordings (any format the importer reads) and on a simulated cohort.

Shared by ``manage.py backtest`` and ``bench/forecast.py``.
"""

from __future__ import annotations

import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

from forecasting.backtest import BacktestResult, backtest
from forecasting.features import features_from_frames, make_histories
from forecasting.forecasters import KINDS, make

DEFAULT_MODELS = KINDS  # naive, seasonal_naive, ets, sarimax, lstm


def collect_files(paths: list[str], out=sys.stderr) -> list[Path]:
    """Files under the given paths that the importer can read; others are named and skipped.

    Fitabase's daily activity totals are skipped when its hourly steps are present
    (they count the same steps twice).
    """
    from ingest.readers import ReaderError, detect_format

    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
        files.extend(sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p])
    readable: list[tuple[Path, str]] = []
    for f in files:
        if f.suffix.lower() not in {".csv", ".zip", ".xml"}:
            continue
        try:
            readable.append((f, detect_format(f)))
        except (ReaderError, UnicodeDecodeError, OSError) as exc:
            print(f"skipped {f.name}: {str(exc).split(';')[0]}", file=out)
    formats = {fmt for _, fmt in readable}
    keep = []
    for f, fmt in readable:
        if fmt == "fitabase-daily-activity" and "fitabase-hourly-steps" in formats:
            print(f"skipped {f.name}: daily totals duplicate the hourly steps", file=out)
            continue
        keep.append(f)
    return keep


def features_from_files(paths: list[str], tz: str = "UTC", out=sys.stderr) -> dict:
    from ingest.readers import load_frames

    files = collect_files(paths, out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        frames = load_frames(files, tz=tz)
    return features_from_frames(frames, tz="UTC")  # times are already in tz's local clock


def simulated_features(n_patients: int, days: int, seed: int = 11, chunk: int = 25,
                       progress: bool = False) -> dict:
    """Daily features of a simulated cohort, simulated a chunk at a time (a year of
    minute data for 1,000 patients does not fit in memory at once)."""
    from ingest.simulator import simulate_cohort

    start = datetime(2025, 1, 1, tzinfo=UTC)
    out: dict = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_patients, desc="simulate", unit="patient")
    for k, first in enumerate(range(0, n_patients, chunk)):
        size = min(chunk, n_patients - first)
        cohort = simulate_cohort(size, days, start=start, seed=seed * 10_000 + k)
        frames = {first + pid: frame for pid, frame in cohort.frames.items()}
        out.update({f"sim{pid:05d}": f for pid, f in features_from_frames(frames).items()})
        if bar is not None:
            bar.update(size)
    if bar is not None:
        bar.close()
    return out


def run(features: dict, metric: str, models: tuple[str, ...] = DEFAULT_MODELS, *,
        extra_training: dict | None = None, lstm: dict | None = None, horizon: int = 14,
        test_fraction: float = 0.5, step: int = 1, progress: bool = False) -> tuple[BacktestResult, dict]:
    """Backtest the named models on these features; returns the result and the models."""
    series = make_histories(features, metric)
    if not series:
        raise ValueError(f"no series has 14 observed days of {metric}")
    built = {}
    for name in models:
        if name == "lstm":
            built[name] = make("lstm", target=metric, **(lstm or {}))
        elif name in ("ets", "sarimax", "combo"):
            built[name] = make(name, progress=progress)
        else:
            built[name] = make(name)
    extra = list(make_histories(extra_training, metric).values()) if extra_training else None
    result = backtest(built, series, metric, horizon=horizon, test_fraction=test_fraction, step=step,
                      extra_training=extra, progress=progress)
    return result, built
