"""Daily features of one patient as the coaching rules, /daily and the chart see them,
and the patient's own baseline.

The features come from the one daily read, ``forecasting.rollups.daily_from_db`` (the
definitions are in ``forecasting.features``): the patient's local days, resting heart
rate over the still hours of the night, moderate-equivalent active minutes, sleep of the
night that ends on the day's morning. Here they are rounded for display and advice.

* ``baseline``: median and MAD of the previous 28 days, needing at least 7 of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np

from care.models import Patient
from forecasting.rollups import daily_from_db
from ingest.schema import METRICS

HR = METRICS["heart_rate"].code
STEPS = METRICS["steps"].code
DAY_S = 86_400
BASELINE_DAYS = 28
BASELINE_MIN_DAYS = 7


@dataclass(frozen=True, slots=True)
class DayFeatures:
    day: date
    resting_hr: float | None = None
    mean_hr: float | None = None
    hrv: float | None = None
    steps: float | None = None
    sleep_minutes: float | None = None
    active_minutes: float | None = None


@dataclass(frozen=True, slots=True)
class Baseline:
    median: float
    mad: float
    days: int


def _value(v, digits: int | None = 1) -> float | None:
    if v is None or math.isnan(v):
        return None
    return float(v) if digits is None else round(float(v), digits)


def load_days(patient_id: int, first: date, last: date) -> list[DayFeatures]:
    """Features of each local day in [first, last], in order (days without data: None)."""
    tz = Patient.objects.filter(pk=patient_id).values_list("timezone", flat=True).first() or "UTC"
    frame = daily_from_db({patient_id: tz}, first, last)[patient_id]
    return [
        DayFeatures(
            day=stamp.date(),
            resting_hr=_value(row.resting_hr),
            mean_hr=_value(row.hr_mean),
            hrv=_value(row.hrv),
            steps=_value(row.steps, None),
            sleep_minutes=_value(row.sleep_minutes),
            active_minutes=_value(row.active_minutes, None),
        )
        for stamp, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    ]


def baseline(values) -> Baseline | None:
    """Median and median absolute deviation of the values that are not None."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if len(arr) < BASELINE_MIN_DAYS:
        return None
    med = float(np.median(arr))
    return Baseline(round(med, 1), round(float(np.median(np.abs(arr - med))), 2), len(arr))


def rolling_baseline(values: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of the BASELINE_DAYS values before each index from ``first`` on
    (NaN where fewer than BASELINE_MIN_DAYS are known). ``values`` holds NaN for gaps."""
    n = len(values) - first
    med = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    for k in range(n):
        i = first + k
        window = values[max(0, i - BASELINE_DAYS):i]
        window = window[~np.isnan(window)]
        if len(window) >= BASELINE_MIN_DAYS:
            m = np.median(window)
            med[k] = m
            mad[k] = np.median(np.abs(window - m))
    return med, mad
