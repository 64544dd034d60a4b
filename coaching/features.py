"""Daily features of one patient, read from the rollups (never from raw minute rows
on a hot path), and the patient's own baseline.

Definitions (UTC days, as the rollups are bucketed in UTC):

* ``resting_hr``: the lowest hourly mean heart rate of the day among hours with at
  least 30 minutes of data. Cheap (24 hourly rows a day) and close to the usual
  "lowest sustained rate" definition; the same definition feeds the charts.
* ``sleep_minutes``: minutes asleep (every stage but ``awake``) in the night that ends
  on the morning of that day (nights run noon to noon, see ingest/storage.py).
* ``active_minutes``: moderate-equivalent minutes (WHO counts one vigorous minute as two
  moderate ones): the larger of logged activity intervals (moderate x1, vigorous x2) and
  minutes walked at a cadence of at least 100 steps a minute (a common moderate-intensity
  threshold), so that the two sources are not added twice.
* ``baseline``: median and MAD of the previous 28 days, needing at least 7 of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
from django.db import connection

from ingest.schema import METRICS

HR = METRICS["heart_rate"].code
STEPS = METRICS["steps"].code
ACTIVITY = METRICS["activity"].code
HRV = METRICS["hrv_rmssd"].code
DAY_S = 86_400
MIN_MINUTES_PER_HOUR = 30
BASELINE_DAYS = 28
BASELINE_MIN_DAYS = 7
MODERATE_CADENCE = 100  # steps a minute


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


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def resting_by_day(epoch_s: np.ndarray, means: np.ndarray, counts: np.ndarray) -> dict[int, float]:
    """Lowest hourly mean per UTC day (day = epoch_s // 86400) over hours with enough data."""
    keep = counts >= MIN_MINUTES_PER_HOUR
    if not keep.any():
        return {}
    days = (epoch_s[keep] // DAY_S).astype(np.int64)
    vals = means[keep]
    order = np.lexsort((vals, days))
    days, vals = days[order], vals[order]
    first = np.r_[True, days[1:] != days[:-1]]
    return dict(zip(days[first].tolist(), vals[first].tolist(), strict=True))


def hourly_heart_rate(patient_id: int, start: datetime, end: datetime) -> np.ndarray:
    """Rows (epoch seconds, mean, min, max, n) of the hourly heart-rate rollup."""
    with connection.cursor() as cur:
        cur.execute(
            """SELECT extract(epoch FROM bucket)::bigint, total / n, vmin, vmax, n FROM samples_1h
               WHERE patient_id = %s AND metric = %s AND bucket >= %s AND bucket < %s AND n > 0
               ORDER BY bucket""",
            [patient_id, HR, start, end],
        )
        rows = cur.fetchall()
    if not rows:
        return np.empty((0, 5))
    return np.asarray(rows, dtype=np.float64)


def load_days(patient_id: int, first: date, last: date) -> list[DayFeatures]:
    """Features of each day in [first, last], in order (days without data have Nones)."""
    start, end = day_start(first), day_start(last + timedelta(days=1))
    hourly = hourly_heart_rate(patient_id, start, end)
    resting: dict[int, float] = {}
    mean_hr: dict[int, float] = {}
    if len(hourly):
        resting = resting_by_day(hourly[:, 0], hourly[:, 1], hourly[:, 4])
        d = (hourly[:, 0] // DAY_S).astype(np.int64)
        totals = hourly[:, 1] * hourly[:, 4]
        uniq, idx = np.unique(d, return_inverse=True)
        sums = np.bincount(idx, weights=totals)
        ns = np.bincount(idx, weights=hourly[:, 4])
        mean_hr = dict(zip(uniq.tolist(), (sums / ns).tolist(), strict=True))
    with connection.cursor() as cur:
        cur.execute(
            """SELECT metric, extract(epoch FROM bucket)::bigint / 86400, total, n FROM samples_1d
               WHERE patient_id = %s AND metric IN (%s, %s) AND bucket >= %s AND bucket < %s""",
            [patient_id, STEPS, HRV, start, end],
        )
        daily = cur.fetchall()
        cur.execute(
            """SELECT (extract(epoch FROM bucket)::bigint + 43200) / 86400, sum(minutes)
               FROM sleep_nightly WHERE patient_id = %s AND stage <> 'awake'
               AND bucket >= %s AND bucket < %s GROUP BY 1""",
            [patient_id, start - timedelta(days=1), end - timedelta(days=1)],
        )
        sleep = dict(cur.fetchall())
        # Minutes walked briskly, binned straight from raw step rows (the time range uses
        # the samples index; samples_1m may be a view over raw rows, see ingest/storage.py).
        cur.execute(
            """SELECT extract(epoch FROM minute)::bigint / 86400, count(*) FROM (
                   SELECT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ 'epoch') AS minute
                   FROM samples WHERE patient_id = %s AND metric = %s AND time >= %s AND time < %s
                   GROUP BY 1 HAVING sum(value) >= %s) AS brisk
               GROUP BY 1""",
            [patient_id, STEPS, start, end, MODERATE_CADENCE],
        )
        cadence = dict(cur.fetchall())
        cur.execute(
            """SELECT extract(epoch FROM time)::bigint / 86400,
                      sum(extract(epoch FROM end_time - time) / 60.0 * CASE WHEN level >= 3 THEN 2 ELSE 1 END)
               FROM samples WHERE patient_id = %s AND metric = %s AND time >= %s AND time < %s
               AND level >= 2 AND end_time IS NOT NULL GROUP BY 1""",
            [patient_id, ACTIVITY, start, end],
        )
        logged = dict(cur.fetchall())
    steps = {int(dn): float(t) for m, dn, t, _ in daily if m == STEPS}
    hrv = {int(dn): float(t) / n for m, dn, t, n in daily if m == HRV and n}
    out = []
    day = first
    while day <= last:
        dn = int(day_start(day).timestamp()) // DAY_S
        active = None
        if dn in cadence or dn in logged or dn in steps:
            active = float(max(cadence.get(dn, 0), float(logged.get(dn, 0) or 0)))
        out.append(DayFeatures(
            day=day,
            resting_hr=_round(resting.get(dn)),
            mean_hr=_round(mean_hr.get(dn)),
            hrv=_round(hrv.get(dn)),
            steps=steps.get(dn),
            sleep_minutes=_round(float(sleep[dn])) if dn in sleep else None,
            active_minutes=active,
        ))
        day += timedelta(days=1)
    return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 1)


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
