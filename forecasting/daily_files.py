"""A reader for daily series files (LifeSnaps' daily export) and a split by person.

``read_lifesnaps_daily`` turns the LifeSnaps daily CSV (one row per person-day: id,
date, resting_hr, bpm, rmssd, steps, minutesAsleep, ... activity minutes) into the
daily feature frames of ``forecasting.features`` (FEATURES columns on a complete
calendar, NaN = missing), so the same backtest runs on it. Mapping: resting_hr is
Fitbit's daily resting heart rate; hr_mean is ``bpm``; hrv is ``rmssd``;
sleep_minutes is ``minutesAsleep``; active_minutes is moderate + 2 x very active
minutes (the WHO equivalence used by the features). Columns the export lacks stay NaN.

``split_by_person``: a person is in the test part when the first byte of
sha256("<prefix><id>") is below 256/3 (about a third), else in the development part.
Fixed, so tuning can never move a person between the parts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.features import FEATURES

LIFESNAPS_COLUMNS = {"resting_hr": "resting_hr", "bpm": "hr_mean", "rmssd": "hrv", "steps": "steps",
                     "minutesAsleep": "sleep_minutes"}
PREFIX = "lifesnaps-"


def read_lifesnaps_daily(path: str | Path) -> dict:
    """Per person (``lifesnaps-<id>``), a daily DataFrame of FEATURES (see the module doc)."""
    path = Path(path)
    if path.is_dir():
        path = path / "lifesnaps_daily.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    raw = pd.read_csv(path)
    missing = {"id", "date", *LIFESNAPS_COLUMNS} - set(raw.columns)
    if missing:
        raise ValueError(f"{path.name}: not a LifeSnaps daily export, lacks {', '.join(sorted(missing))}")
    raw["date"] = pd.to_datetime(raw["date"], errors="raise")
    frame = raw.rename(columns=LIFESNAPS_COLUMNS)
    if {"moderately_active_minutes", "very_active_minutes"} <= set(raw.columns):
        frame["active_minutes"] = raw["moderately_active_minutes"] + 2 * raw["very_active_minutes"]
    out = {}
    for pid, part in frame.groupby("id", sort=True):
        part = part.groupby("date").mean(numeric_only=True).sort_index()
        calendar = pd.date_range(part.index.min(), part.index.max(), freq="D")
        daily = part.reindex(calendar).reindex(columns=list(FEATURES)).astype(float)
        daily.index.name = "date"
        out[f"{PREFIX}{int(pid)}"] = daily
    return out


def in_test_part(person: str) -> bool:
    return hashlib.sha256(person.encode()).digest()[0] < 256 // 3


def split_by_person(features: dict, part: str) -> dict:
    """The ``dev`` or ``test`` part (see the module doc), or everyone for ``all``."""
    if part == "all":
        return dict(features)
    if part not in ("dev", "test"):
        raise ValueError(f"part must be dev, test or all, not {part!r}")
    want = part == "test"
    return {p: f for p, f in features.items() if in_test_part(str(p)) == want}


def promoted_name(dev_scores: dict) -> str | None:
    """The registry's rule on the development part: the lowest 7-day MASE wins."""
    scored = {n: s for n, s in dev_scores.items() if s is not None and np.isfinite(s)}
    return min(scored, key=lambda n: scored[n]) if scored else None
