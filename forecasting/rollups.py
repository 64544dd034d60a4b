"""Daily features of patients read from the samples store: the one daily read.

``hourly_from_db`` turns the rollups into the hourly intermediate of
``forecasting.features``; ``daily_from_db`` applies ``features.daily_table`` on each
patient's local calendar. Coaching (``coaching.features.load_days``), the chart and
/daily (api), and the forecasters (``forecasting.service``) all read daily features
through ``daily_from_db``, so a resting heart rate means one thing everywhere.
"""

from __future__ import annotations

import io
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
    daily_table,
    split_by_patient,
)
from ingest.schema import INTENSITIES, METRICS
from ingest.storage import installed_dialect

MODERATE = INTENSITIES["moderate"]
VIGOROUS = INTENSITIES["vigorous"]

_HOURLY_SQL = """
SELECT patient_id, extract(epoch FROM bucket)::bigint, metric, n, total, vmin, vmax FROM samples_1h
WHERE patient_id = ANY(%s) AND metric = ANY(%s) AND bucket >= %s AND bucket < %s
"""
# Brisk minutes: TimescaleDB keeps samples_1m materialised (read it); plain PostgreSQL
# defines it as a date_bin view over raw rows, which a bound on ``bucket`` cannot
# prune, so there the same minute sums are computed from raw rows bounded by time.
_BRISK_SQL = {
    "timescale": """
SELECT patient_id, extract(epoch FROM date_trunc('hour', bucket))::bigint AS hour, count(*) FROM samples_1m
WHERE patient_id = ANY(%s) AND metric = %s AND bucket >= %s AND bucket < %s AND total >= %s
GROUP BY 1, 2
""",
    "postgres": """
SELECT patient_id, extract(epoch FROM date_trunc('hour', minute))::bigint AS hour, count(*) FROM (
    SELECT patient_id, date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ 'epoch') AS minute,
           sum(value) AS total
    FROM samples WHERE patient_id = ANY(%s) AND metric = %s AND time >= %s AND time < %s
      AND value IS NOT NULL
    GROUP BY 1, 2) AS m
WHERE total >= %s GROUP BY 1, 2
""",
}
_ACTIVITY_SQL = """
SELECT patient_id, extract(epoch FROM date_trunc('hour', time))::bigint AS hour,
       sum(extract(epoch FROM end_time - time) / 60.0 * CASE WHEN level >= %s THEN 2 ELSE 1 END)
FROM samples WHERE patient_id = ANY(%s) AND metric = %s AND time >= %s AND time < %s
  AND end_time IS NOT NULL AND coalesce(level, %s) >= %s
GROUP BY 1, 2
"""
_SLEEP_SQL = """
SELECT patient_id, extract(epoch FROM bucket)::bigint, stage, minutes FROM sleep_nightly
WHERE patient_id = ANY(%s) AND bucket >= %s AND bucket < %s
"""


def _utc(epoch_s: pd.Series) -> pd.Series:
    """Epoch seconds (as read: timestamps travel as integers, which psycopg loads far
    faster than timestamptz) to UTC datetimes at nanosecond resolution."""
    return pd.to_datetime(epoch_s.astype(np.int64) * 1_000_000_000, utc=True)


def _copy_frame(cur, sql: str, params: list, columns: list[str]) -> pd.DataFrame:
    """The rows of a query of numbers, read with COPY and parsed by pandas: for the
    hundreds of thousands of hourly rows of 1,000 patients, ``fetchall`` plus a
    DataFrame of tuples was half of the daily job's read (bench.daily_job --profile). Floats come back exactly: PostgreSQL
    prints the shortest text that round-trips and pandas' parser reads it exactly."""
    buf = io.BytesIO()
    # psycopg's own cursor: Django's debug cursor (DEBUG=1, as under make run) wraps
    # copy() without its params, and COPY (query) needs them
    raw = getattr(cur, "cursor", cur)
    with raw.copy(f"COPY ({sql.strip()}) TO STDOUT", params) as copy:
        for block in copy:
            buf.write(block)
    if buf.tell() == 0:
        return pd.DataFrame([], columns=columns)
    buf.seek(0)
    return pd.read_csv(buf, sep="\t", header=None, names=columns, na_values=["\\N"], keep_default_na=False)


def hourly_from_db(patient_ids: list[int], start: datetime, end: datetime) -> Hourly:
    """The hourly intermediate of several patients over [start, end), read from rollups."""
    hr, steps, hrv = (METRICS[m].code for m in ("heart_rate", "steps", "hrv_rmssd"))
    ids = [int(p) for p in patient_ids]
    with connection.cursor() as cur:
        roll = _copy_frame(cur, _HOURLY_SQL, [ids, [hr, steps, hrv], start, end],
                           ["patient", "hour", "metric", "n", "total", "vmin", "vmax"])
        dialect = "timescale" if installed_dialect(cur) == "timescale" else "postgres"
        cur.execute(_BRISK_SQL[dialect], [ids, steps, start, end, BRISK_STEPS_PER_MIN])
        brisk = cur.fetchall()
        cur.execute(_ACTIVITY_SQL, [VIGOROUS, ids, METRICS["activity"].code, start, end,
                                    MODERATE, MODERATE])
        activity = cur.fetchall()
        cur.execute(_SLEEP_SQL, [ids, start - pd.Timedelta(days=1), end])
        sleep_rows = cur.fetchall()
    roll["hour"] = _utc(roll["hour"])
    key = ["patient", "hour"]
    parts = []
    for code, mapping in ((hr, {"n": "hr_n", "total": "hr_sum", "vmin": "hr_min", "vmax": "hr_max"}),
                          (steps, {"n": "steps_n", "total": "steps"}),
                          (hrv, {"n": "hrv_n", "total": "hrv_sum"})):
        sub = roll[roll["metric"] == code]
        parts.append(sub[key + list(mapping)].rename(columns=mapping).set_index(key))
    for data, name in ((brisk, "active_min"), (activity, "act_min")):
        frame = pd.DataFrame(data, columns=["patient", "hour", name])
        frame["hour"] = _utc(frame["hour"])
        frame[name] = frame[name].astype(float)
        parts.append(frame.set_index(key))
    hours = pd.concat(parts, axis=1).reset_index()
    for col in HOURLY_COLUMNS:
        hours[col] = hours[col].astype(float) if col in hours else np.nan
    hours = hours[["patient", "hour", *HOURLY_COLUMNS]].sort_values(key, ignore_index=True)
    sleep = pd.DataFrame(sleep_rows, columns=["patient", "night", "stage", "minutes"])
    sleep["night"] = _utc(sleep["night"]).dt.floor("D").dt.tz_localize(None)
    sleep["minutes"] = sleep["minutes"].astype(float)
    return Hourly(hours, sleep)


def daily_from_db(zones: Mapping[int, str], first: date, last: date) -> dict[int, pd.DataFrame]:
    """Per patient (id -> IANA zone), ``FEATURES`` on each local day from ``first`` to
    ``last`` inclusive (a complete calendar; NaN where a day lacks data)."""
    # Local days reach up to 14 h either side of UTC: read a day more on each side.
    start = datetime.combine(first - timedelta(days=1), time(0), UTC)
    end = datetime.combine(last + timedelta(days=2), time(0), UTC)
    feats = split_by_patient(daily_table(hourly_from_db(list(zones), start, end), dict(zones)), first, last)
    calendar = pd.date_range(pd.Timestamp(first), pd.Timestamp(last), freq="D", name="date")
    empty = pd.DataFrame(np.nan, index=calendar, columns=list(FEATURES))
    return {pid: feats[pid] if pid in feats else empty.copy() for pid in zones}
