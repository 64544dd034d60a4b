"""Daily features of patients read from the samples store: the one daily read.

``hourly_from_db`` turns the rollups into the hourly intermediate of
``forecasting.features``; ``daily_from_db`` applies ``features.daily_features`` on each
patient's local calendar. Coaching (``coaching.features.load_days``), the chart and
/daily (api), and the forecasters (``forecasting.service``) all read daily features
through ``daily_from_db``, so a resting heart rate means one thing everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd
from django.db import connection

from forecasting.features import (
    BRISK_STEPS_PER_MIN,
    FEATURES,
    HOURLY_COLUMNS,
    Hourly,
    daily_features,
)
from ingest.schema import INTENSITIES, METRICS
from ingest.storage import installed_dialect

MODERATE = INTENSITIES["moderate"]
VIGOROUS = INTENSITIES["vigorous"]

_HOURLY_SQL = """
SELECT patient_id, bucket, metric, n, total, vmin, vmax FROM samples_1h
WHERE patient_id = ANY(%s) AND metric = ANY(%s) AND bucket >= %s AND bucket < %s
"""
# Brisk minutes: TimescaleDB keeps samples_1m materialised (read it); plain PostgreSQL
# defines it as a date_bin view over raw rows, which a bound on ``bucket`` cannot
# prune, so there the same minute sums are computed from raw rows bounded by time.
_BRISK_SQL = {
    "timescale": """
SELECT patient_id, date_trunc('hour', bucket) AS hour, count(*) FROM samples_1m
WHERE patient_id = ANY(%s) AND metric = %s AND bucket >= %s AND bucket < %s AND total >= %s
GROUP BY 1, 2
""",
    "postgres": """
SELECT patient_id, date_trunc('hour', minute) AS hour, count(*) FROM (
    SELECT patient_id, date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ 'epoch') AS minute,
           sum(value) AS total
    FROM samples WHERE patient_id = ANY(%s) AND metric = %s AND time >= %s AND time < %s
      AND value IS NOT NULL
    GROUP BY 1, 2) AS m
WHERE total >= %s GROUP BY 1, 2
""",
}
_ACTIVITY_SQL = """
SELECT patient_id, date_trunc('hour', time) AS hour,
       sum(extract(epoch FROM end_time - time) / 60.0 * CASE WHEN level >= %s THEN 2 ELSE 1 END)
FROM samples WHERE patient_id = ANY(%s) AND metric = %s AND time >= %s AND time < %s
  AND end_time IS NOT NULL AND coalesce(level, %s) >= %s
GROUP BY 1, 2
"""
_SLEEP_SQL = """
SELECT patient_id, bucket, stage, minutes FROM sleep_nightly
WHERE patient_id = ANY(%s) AND bucket >= %s AND bucket < %s
"""


def hourly_from_db(patient_ids: list[int], start: datetime, end: datetime) -> Hourly:
    """The hourly intermediate of several patients over [start, end), read from rollups."""
    hr, steps, hrv = (METRICS[m].code for m in ("heart_rate", "steps", "hrv_rmssd"))
    ids = [int(p) for p in patient_ids]
    with connection.cursor() as cur:
        cur.execute(_HOURLY_SQL, [ids, [hr, steps, hrv], start, end])
        rows = cur.fetchall()
        dialect = "timescale" if installed_dialect(cur) == "timescale" else "postgres"
        cur.execute(_BRISK_SQL[dialect], [ids, steps, start, end, BRISK_STEPS_PER_MIN])
        brisk = cur.fetchall()
        cur.execute(_ACTIVITY_SQL, [VIGOROUS, ids, METRICS["activity"].code, start, end,
                                    MODERATE, MODERATE])
        activity = cur.fetchall()
        cur.execute(_SLEEP_SQL, [ids, start - pd.Timedelta(days=1), end])
        sleep_rows = cur.fetchall()
    roll = pd.DataFrame(rows, columns=["patient", "hour", "metric", "n", "total", "vmin", "vmax"])
    roll["hour"] = pd.to_datetime(roll["hour"], utc=True)
    key = ["patient", "hour"]
    parts = []
    for code, mapping in ((hr, {"n": "hr_n", "total": "hr_sum", "vmin": "hr_min", "vmax": "hr_max"}),
                          (steps, {"n": "steps_n", "total": "steps"}),
                          (hrv, {"n": "hrv_n", "total": "hrv_sum"})):
        sub = roll[roll["metric"] == code]
        parts.append(sub[key + list(mapping)].rename(columns=mapping).set_index(key))
    for data, name in ((brisk, "active_min"), (activity, "act_min")):
        frame = pd.DataFrame(data, columns=["patient", "hour", name])
        frame["hour"] = pd.to_datetime(frame["hour"], utc=True)
        frame[name] = frame[name].astype(float)
        parts.append(frame.set_index(key))
    hours = pd.concat(parts, axis=1).reset_index()
    for col in HOURLY_COLUMNS:
        hours[col] = hours[col].astype(float) if col in hours else np.nan
    hours = hours[["patient", "hour", *HOURLY_COLUMNS]].sort_values(key, ignore_index=True)
    sleep = pd.DataFrame(sleep_rows, columns=["patient", "night", "stage", "minutes"])
    sleep["night"] = pd.to_datetime(sleep["night"], utc=True).dt.floor("D").dt.tz_localize(None)
    sleep["minutes"] = sleep["minutes"].astype(float)
    return Hourly(hours, sleep)


def daily_from_db(zones: Mapping[int, str], first: date, last: date) -> dict[int, pd.DataFrame]:
    """Per patient (id -> IANA zone), ``FEATURES`` on each local day from ``first`` to
    ``last`` inclusive (a complete calendar; NaN where a day lacks data)."""
    # Local days reach up to 14 h either side of UTC: read a day more on each side.
    start = datetime.combine(first - timedelta(days=1), time(0), UTC)
    end = datetime.combine(last + timedelta(days=2), time(0), UTC)
    feats = daily_features(hourly_from_db(list(zones), start, end), dict(zones))
    calendar = pd.date_range(pd.Timestamp(first), pd.Timestamp(last), freq="D", name="date")
    empty = pd.DataFrame(np.nan, index=calendar, columns=list(FEATURES))
    return {pid: feats[pid].reindex(calendar) if pid in feats else empty.copy() for pid in zones}
