"""The patient chart: everything the patient page draws, in one read.

Columnar arrays (epoch seconds and values) are what the chart library wants and are
cheap to encode. Reads only rollups: ``samples_1h`` for heart rate (which also gives the
daily resting heart rate and its 28-day baseline), ``samples_1d`` for steps,
``sleep_nightly`` for sleep, plus alerts and the latest forecast of resting heart rate.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
from django.core.cache import cache
from django.db import connection

from coaching.engine import forecast_model
from coaching.features import (
    BASELINE_DAYS,
    DAY_S,
    STEPS,
    hourly_heart_rate,
    resting_by_day,
    rolling_baseline,
)

MAX_DAYS = 90
CACHE_S = 60  # data arrives in device batches, minutes apart: a chart may be this old
FORECAST_DAYS = 14
ALERT_LIMIT = 200


def chart_json(patient_id: int, days: int) -> bytes:
    """The chart as JSON bytes, computed at most once a minute per patient and range.

    Only the computation is cached (in Redis): who may read it is checked, and the read
    audited, on every request by the caller."""
    now = datetime.now(UTC)
    key = f"chart:v1:{patient_id}:{days}:{int(now.timestamp()) // CACHE_S}"
    body = cache.get(key)
    if body is None:
        body = orjson.dumps(chart(patient_id, days, now))
        cache.set(key, body, timeout=CACHE_S * 2)
    return body


def _clean(values) -> list:
    """Floats rounded to 1 decimal, NaN as null (JSON has no NaN)."""
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 1)
            for v in values]


def chart(patient_id: int, days: int, now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(days=days)
    last_day = (int(end.timestamp()) - 1) // DAY_S
    first_day = last_day - days + 1  # daily series: the last `days` UTC days, today included
    history_day = first_day - BASELINE_DAYS
    hourly = hourly_heart_rate(patient_id, datetime.fromtimestamp(history_day * DAY_S, UTC), end)
    in_range = hourly[:, 0] >= start.timestamp() if len(hourly) else np.zeros(0, dtype=bool)
    hr = hourly[in_range]

    day_numbers = np.arange(history_day, last_day + 1)
    resting_map = resting_by_day(hourly[:, 0], hourly[:, 1], hourly[:, 4]) if len(hourly) else {}
    resting = np.array([resting_map.get(int(d), np.nan) for d in day_numbers])
    shown = day_numbers >= first_day
    med, mad = rolling_baseline(resting, int(np.argmax(shown)) if shown.any() else len(resting))

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
        cur.execute(
            """SELECT id, detector, severity, status, extract(epoch FROM window_start)::bigint,
                      extract(epoch FROM window_end)::bigint
               FROM streams_alert WHERE patient_id = %s AND window_end >= %s AND window_start < %s
               ORDER BY window_start DESC LIMIT %s""",
            [patient_id, start, end, ALERT_LIMIT],
        )
        alerts = cur.fetchall()

    day_t = (day_numbers[shown] * DAY_S + DAY_S // 2).tolist()  # noon: bars sit mid-day
    return {
        "patient": patient_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "days": days,
        "heart_rate": {
            "unit": "beats/min",
            "t": hr[:, 0].astype(np.int64).tolist(),
            "mean": _clean(hr[:, 1]), "min": _clean(hr[:, 2]), "max": _clean(hr[:, 3]),
        },
        "resting_hr": {
            "unit": "beats/min",
            "definition": "lowest hourly mean of the day (hours with at least 30 minutes of data)",
            "t": day_t,
            "value": _clean(resting[shown]),
            "baseline": _clean(med),
            "baseline_low": _clean(med - 2 * np.maximum(mad, 1.0)),
            "baseline_high": _clean(med + 2 * np.maximum(mad, 1.0)),
        },
        "forecast": _forecast(patient_id, now),
        "steps": {"unit": "steps", "t": [r[0] + DAY_S // 2 for r in steps],
                  "value": [round(r[1]) for r in steps]},
        "sleep": {"unit": "min", "t": [r[0] + DAY_S // 2 for r in sleep],
                  "asleep": _clean(r[1] or 0.0 for r in sleep),
                  "deep": _clean(r[2] or 0.0 for r in sleep),
                  "rem": _clean(r[3] or 0.0 for r in sleep),
                  "awake": _clean(r[4] or 0.0 for r in sleep)},
        "alerts": [{"id": a[0], "detector": a[1], "severity": a[2], "status": a[3],
                    "start": a[4], "end": a[5]} for a in alerts],
    }


def _forecast(patient_id: int, now: datetime) -> dict | None:
    model = forecast_model()
    if model is None:
        return None
    today = now.date()
    rows = list(
        model.objects.filter(patient_id=patient_id, metric="resting_hr", target_date__gt=today,
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
