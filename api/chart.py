"""The patient chart: everything the patient page draws, in one read.

Columnar arrays (epoch seconds and values) are what the chart library wants and are
cheap to encode. Reads only rollups: ``samples_1h`` for hourly heart rate, the daily
features of ``forecasting.rollups.daily_from_db`` for the resting heart rate (the same
numbers as /daily, the advice and the forecasters' history) and its 28-day baseline,
``samples_1d`` for steps, ``sleep_nightly`` for sleep, plus alerts and the latest
forecast of resting heart rate.
"""

from __future__ import annotations

import math
import zoneinfo
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
from django.core.cache import cache
from django.db import connection

from alerts.models import Alert
from care.models import Patient
from coaching.features import BASELINE_DAYS, DAY_S, HR, STEPS, rolling_baseline
from forecasting.models import Forecast
from forecasting.rollups import daily_from_db

MAX_DAYS = 90
CACHE_S = 60  # data arrives in device batches, minutes apart: a chart may be this old
FORECAST_DAYS = 14
ALERT_LIMIT = 200


def chart_json(patient_id: int, days: int) -> bytes:
    """The chart as JSON bytes, computed at most once a minute per patient and range.

    Only the computation is cached (in Redis): who may read it is checked, and the read
    audited, on every request by the caller."""
    now = datetime.now(UTC)
    key = f"chart:v2:{patient_id}:{days}:{int(now.timestamp()) // CACHE_S}"
    body = cache.get(key)
    if body is None:
        body = orjson.dumps(chart(patient_id, days, now))
        cache.set(key, body, timeout=CACHE_S * 2)
    return body


def _clean(values) -> list:
    """Floats rounded to 1 decimal, NaN as null (JSON has no NaN)."""
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 1)
            for v in values]


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


def chart(patient_id: int, days: int, now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(days=days)
    hr = hourly_heart_rate(patient_id, start, end)

    # Daily series: the last `days` local days, today included, after BASELINE_DAYS more
    # for the rolling baseline.
    tz = Patient.objects.filter(pk=patient_id).values_list("timezone", flat=True).first() or "UTC"
    today = now.astimezone(zoneinfo.ZoneInfo(tz)).date()
    first = today - timedelta(days=days - 1)
    daily = daily_from_db({patient_id: tz}, first - timedelta(days=BASELINE_DAYS), today)[patient_id]
    resting = daily["resting_hr"].to_numpy(dtype=np.float64)
    med, mad = rolling_baseline(resting, BASELINE_DAYS)
    shown_days = daily.index[BASELINE_DAYS:]

    alert_sql = f"""SELECT id, detector, severity, status, extract(epoch FROM window_start)::bigint,
                      extract(epoch FROM window_end)::bigint
               FROM {Alert._meta.db_table}
               WHERE patient_id = %s AND window_end >= %s AND window_start < %s
               ORDER BY window_start DESC LIMIT %s"""
    with connection.cursor() as cur:
        cur.execute(
            """SELECT extract(epoch FROM bucket)::bigint, total FROM samples_1d
               WHERE patient_id = %s AND metric = %s AND bucket >= %s AND bucket < %s
               ORDER BY bucket""",
            [patient_id, STEPS, start - timedelta(days=1), end],
        )
        steps = cur.fetchall()
        cur.execute(
            """SELECT extract(epoch FROM bucket)::bigint,
                      sum(minutes) FILTER (WHERE stage <> 'awake'),
                      sum(minutes) FILTER (WHERE stage = 'deep'),
                      sum(minutes) FILTER (WHERE stage = 'rem'),
                      sum(minutes) FILTER (WHERE stage = 'awake')
               FROM sleep_nightly WHERE patient_id = %s AND bucket >= %s AND bucket < %s
               GROUP BY 1 ORDER BY 1""",
            [patient_id, start - timedelta(days=1), end],
        )
        sleep = cur.fetchall()
        cur.execute(alert_sql, [patient_id, start, end, ALERT_LIMIT])
        alerts = cur.fetchall()

    # noon UTC of each day: bars sit mid-day
    day_t = [int(d.timestamp()) + DAY_S // 2 for d in shown_days.tz_localize(UTC)]
    now_s = now.timestamp()
    return {
        "patient": patient_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "days": days,
        "timezone": tz,
        "today": today.isoformat(),
        "heart_rate": {
            "unit": "beats/min",
            "t": hr[:, 0].astype(np.int64).tolist(),
            "mean": _clean(hr[:, 1]), "min": _clean(hr[:, 2]), "max": _clean(hr[:, 3]),
        },
        "resting_hr": {
            "unit": "beats/min",
            "definition": "mean heart rate over the still hours of the night (01:00-05:59 local)",
            "t": day_t,
            "value": _clean(resting[BASELINE_DAYS:]),
            "baseline": _clean(med),
            "baseline_low": _clean(med - 2 * np.maximum(mad, 1.0)),
            "baseline_high": _clean(med + 2 * np.maximum(mad, 1.0)),
            "partial": [d.date() == today for d in shown_days],
        },
        # A daily value whose day is not over yet (the patient's local today for the
        # resting rate; the UTC day of the steps rollup) is flagged partial.
        "forecast": _forecast(patient_id, now),
        "steps": {"unit": "steps", "t": [r[0] + DAY_S // 2 for r in steps],
                  "value": [round(r[1]) for r in steps],
                  "partial": [r[0] + DAY_S > now_s for r in steps]},
        "sleep": {"unit": "min", "t": [r[0] + DAY_S // 2 for r in sleep],
                  "asleep": _clean(r[1] or 0.0 for r in sleep),
                  "deep": _clean(r[2] or 0.0 for r in sleep),
                  "rem": _clean(r[3] or 0.0 for r in sleep),
                  "awake": _clean(r[4] or 0.0 for r in sleep)},
        "alerts": [{"id": a[0], "detector": a[1], "severity": a[2], "status": a[3],
                    "start": a[4], "end": a[5]} for a in alerts],
    }


def _forecast(patient_id: int, now: datetime) -> dict | None:
    today = now.date()
    rows = list(
        Forecast.objects.filter(patient_id=patient_id, metric="resting_hr", target_date__gt=today,
                             target_date__lte=today + timedelta(days=FORECAST_DAYS))
        .order_by("target_date", "-issued_on", "-created_at")
        .values_list("target_date", "p10", "p50", "p90", "mean", "model_version__kind",
                     "model_version__version")
    )
    if not rows:
        return None
    seen: dict = {}
    for row in rows:  # the newest issue per target day
        seen.setdefault(row[0], row)
    points = sorted(seen.values())
    return {
        "metric": "resting_hr",
        "model_version": f"{points[-1][5]} v{points[-1][6]}",
        "t": [int(datetime(d.year, d.month, d.day, 12, tzinfo=UTC).timestamp()) for d, *_ in points],
        "p10": _clean(p[1] for p in points),
        "p50": _clean(p[2] if p[2] is not None else p[4] for p in points),
        "p90": _clean(p[3] for p in points),
    }
