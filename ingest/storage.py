"""The samples store: DDL for both dialects, the COPY writer, rollups and reads.

Two dialects, one interface:

* TimescaleDB (when the extension is present): ``samples`` is a hypertable,
  compressed by patient and metric, with a retention policy; ``samples_1m``,
  ``samples_1h``, ``samples_1d`` and ``sleep_nightly`` are continuous aggregates.
* Plain PostgreSQL: ``samples`` is range-partitioned by month (partitions made on
  demand); ``samples_1h``, ``samples_1d`` and ``sleep_nightly`` are tables kept current
  by the sink in the same transaction that copies the raw rows (exact, because each
  batch is stored once) and rebuildable from raw rows with ``date_bin``
  (``rebuild_rollups``); ``samples_1m`` is a view that bins raw rows with ``date_bin``
  (a minute rollup of minute data would double every write and save no read).

Every rollup has the columns ``patient_id, metric, bucket, n, total, vmin, vmax``
(mean = total / n); ``sleep_nightly`` has ``patient_id, bucket, stage, minutes``
where a night runs from noon UTC to noon UTC and ``bucket`` is its start.
Readers (the API, the models) use these names and never care which dialect runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from django.conf import settings
from django.db import connection as django_connection

from ingest.schema import INTENSITIES, METRICS
from lib import metrics

log = logging.getLogger(__name__)

ROLLUPS = {"1m": ("samples_1m", 60_000), "1h": ("samples_1h", 3_600_000), "1d": ("samples_1d", 86_400_000)}
PG_MATERIALIZED = ("1h", "1d")  # rollups kept as tables on plain PostgreSQL
SAMPLE_COLUMNS = ("patient_id", "device_id", "metric", "time", "end_time", "value", "label", "level")
SLEEP_CODE = METRICS["sleep_stage"].code
NIGHT_OFFSET_MS = 12 * 3_600_000  # nights run noon to noon (UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- DDL

_ROLLUP_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    patient_id bigint NOT NULL,
    metric smallint NOT NULL,
    bucket timestamptz NOT NULL,
    n bigint NOT NULL,
    total double precision NOT NULL,
    vmin double precision NOT NULL,
    vmax double precision NOT NULL,
    PRIMARY KEY (patient_id, metric, bucket)
)"""

POSTGRES_DDL = [
    """
    CREATE TABLE IF NOT EXISTS samples (
        patient_id bigint NOT NULL,
        device_id bigint,
        metric smallint NOT NULL,
        time timestamptz NOT NULL,
        end_time timestamptz,
        value double precision,
        label text,
        level smallint
    ) PARTITION BY RANGE (time)""",
    "CREATE INDEX IF NOT EXISTS samples_patient_metric_time ON samples (patient_id, metric, time)",
    # A minute rollup of minute-resolution data is as large as the raw rows and saves
    # nothing at read time, so plain PostgreSQL computes it on demand with date_bin
    # (readers ask for at most ~1,000 minutes of one patient); hours and days are tables.
    """
    CREATE OR REPLACE VIEW samples_1m AS
    SELECT patient_id, metric, date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ 'epoch') AS bucket,
           count(value) AS n, sum(value) AS total, min(value) AS vmin, max(value) AS vmax
    FROM samples WHERE value IS NOT NULL GROUP BY 1, 2, 3""",
    *[_ROLLUP_TABLE.format(name=name) for key, (name, _) in ROLLUPS.items() if key in PG_MATERIALIZED],
    """
    CREATE TABLE IF NOT EXISTS sleep_nightly (
        patient_id bigint NOT NULL,
        bucket timestamptz NOT NULL,
        stage text NOT NULL,
        minutes double precision NOT NULL,
        PRIMARY KEY (patient_id, bucket, stage)
    )""",
]


def timescale_ddl(retention_days: int) -> list[str]:
    agg = "count(value) AS n, sum(value) AS total, min(value) AS vmin, max(value) AS vmax"
    reagg = "sum(n)::bigint AS n, sum(total) AS total, min(vmin) AS vmin, max(vmax) AS vmax"
    cagg = "WITH (timescaledb.continuous, timescaledb.materialized_only = false)"
    return [
        """
        CREATE TABLE IF NOT EXISTS samples (
            patient_id bigint NOT NULL,
            device_id bigint,
            metric smallint NOT NULL,
            time timestamptz NOT NULL,
            end_time timestamptz,
            value double precision,
            label text,
            level smallint
        )""",
        "SELECT create_hypertable('samples', by_range('time', INTERVAL '7 days'), if_not_exists => TRUE)",
        "CREATE INDEX IF NOT EXISTS samples_patient_metric_time ON samples (patient_id, metric, time DESC)",
        """ALTER TABLE samples SET (timescaledb.compress,
             timescaledb.compress_segmentby = 'patient_id, metric',
             timescaledb.compress_orderby = 'time DESC')""",
        "SELECT add_compression_policy('samples', INTERVAL '7 days', if_not_exists => TRUE)",
        f"SELECT add_retention_policy('samples', INTERVAL '{int(retention_days)} days', if_not_exists => TRUE)",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS samples_1m {cagg} AS
            SELECT patient_id, metric, time_bucket(INTERVAL '1 minute', time) AS bucket, {agg}
            FROM samples WHERE value IS NOT NULL GROUP BY 1, 2, 3 WITH NO DATA""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS samples_1h {cagg} AS
            SELECT patient_id, metric, time_bucket(INTERVAL '1 hour', bucket) AS bucket, {reagg}
            FROM samples_1m GROUP BY 1, 2, 3 WITH NO DATA""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS samples_1d {cagg} AS
            SELECT patient_id, metric, time_bucket(INTERVAL '1 day', bucket) AS bucket, {reagg}
            FROM samples_1h GROUP BY 1, 2, 3 WITH NO DATA""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS sleep_nightly {cagg} AS
            SELECT patient_id,
                   time_bucket(INTERVAL '1 day', time, "offset" => INTERVAL '12 hours') AS bucket,
                   label AS stage,
                   sum(extract(epoch FROM end_time - time)) / 60.0 AS minutes
            FROM samples WHERE metric = {SLEEP_CODE} GROUP BY 1, 2, 3 WITH NO DATA""",
        """SELECT add_continuous_aggregate_policy('samples_1m', start_offset => INTERVAL '3 days',
             end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute',
             if_not_exists => TRUE)""",
        """SELECT add_continuous_aggregate_policy('samples_1h', start_offset => INTERVAL '3 days',
             end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '10 minutes',
             if_not_exists => TRUE)""",
        """SELECT add_continuous_aggregate_policy('samples_1d', start_offset => INTERVAL '7 days',
             end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour',
             if_not_exists => TRUE)""",
        """SELECT add_continuous_aggregate_policy('sleep_nightly', start_offset => INTERVAL '7 days',
             end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes',
             if_not_exists => TRUE)""",
        """CREATE TABLE IF NOT EXISTS rollup_refresh_queue (
             id bigserial PRIMARY KEY, range_start timestamptz NOT NULL,
             range_end timestamptz NOT NULL, queued_at timestamptz NOT NULL DEFAULT now())""",
    ]


def timescale_available(cur: psycopg.Cursor) -> bool:
    cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    return cur.fetchone() is not None


def detect_dialect(cur: psycopg.Cursor) -> str:
    choice = settings.STORAGE_DIALECT
    if choice in {"postgres", "timescale"}:
        return choice
    if choice != "auto":
        raise ValueError(f"STORAGE_DIALECT={choice!r}: use auto, postgres or timescale")
    cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    if cur.fetchone():
        return "timescale"
    return "timescale" if timescale_available(cur) else "postgres"


def install(cur, dialect: str | None = None) -> str:
    """Create the samples store (idempotent). Returns the dialect installed."""
    dialect = dialect or detect_dialect(cur)
    if dialect == "timescale":
        cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        for statement in timescale_ddl(settings.SAMPLES_RETENTION_DAYS):
            cur.execute(statement)
    else:
        for statement in POSTGRES_DDL:
            cur.execute(statement)
    cur.execute(
        "CREATE TABLE IF NOT EXISTS storage_dialect (one boolean PRIMARY KEY DEFAULT true, name text NOT NULL)"
    )
    cur.execute(
        "INSERT INTO storage_dialect (name) VALUES (%s) ON CONFLICT (one) DO UPDATE SET name = excluded.name",
        (dialect,),
    )
    return dialect


def installed_dialect(cur) -> str:
    cur.execute("SELECT name FROM storage_dialect")
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("the samples store is not installed: run `python manage.py migrate`")
    return row[0]


# ------------------------------------------------------------------ partitions

def _month_start(ms: int) -> datetime:
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    return datetime(dt.year, dt.month, 1, tzinfo=UTC)


def _next_month(dt: datetime) -> datetime:
    return datetime(dt.year + (dt.month == 12), dt.month % 12 + 1, 1, tzinfo=UTC)


class PartitionKeeper:
    """Creates the monthly partitions of the plain-PostgreSQL samples table on demand."""

    def __init__(self) -> None:
        self.known: set[str] = set()

    def ensure(self, conn: psycopg.Connection, min_ms: int, max_ms: int) -> None:
        month = _month_start(min_ms)
        last = _month_start(max_ms)
        while month <= last:
            name = f"samples_y{month.year:04d}m{month.month:02d}"
            if name not in self.known:
                nxt = _next_month(month)
                with conn.transaction():
                    conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF samples "
                        f"FOR VALUES FROM ('{month.isoformat()}') TO ('{nxt.isoformat()}')"
                    )
                self.known.add(name)
            month = _next_month(month)


# ---------------------------------------------------------------------- writing

@dataclass(slots=True)
class Columns:
    """A batch of samples as parallel columns (what COPY and the rollups need)."""

    patient: np.ndarray  # int64
    device: list
    metric: np.ndarray  # int16
    time_ms: np.ndarray  # int64
    end_ms: list
    value: list
    label: list
    level: list

    def __len__(self) -> int:
        return len(self.time_ms)


def columns_from_batches(batches: Iterable) -> Columns:
    """Flatten validated batches (ingest.schema.Batch) into columns."""
    patient: list[int] = []
    device: list = []
    metric: list[int] = []
    time_ms: list[int] = []
    end_ms: list = []
    value: list = []
    label: list = []
    level: list = []
    codes = {name: spec.code for name, spec in METRICS.items()}
    for batch in batches:
        n = len(batch.samples)
        patient.extend([batch.patient] * n)
        device.extend([batch.device] * n)
        for s in batch.samples:
            metric.append(codes[s["metric"]])
            time_ms.append(s["time"])
            end_ms.append(s.get("end"))
            value.append(s.get("value"))
            if "stage" in s:
                label.append(s["stage"])
                level.append(None)
            elif "type" in s:
                label.append(s["type"])
                level.append(INTENSITIES.get(s.get("intensity")))
            else:
                label.append(None)
                level.append(None)
    return Columns(
        np.asarray(patient, dtype=np.int64), device, np.asarray(metric, dtype=np.int16),
        np.asarray(time_ms, dtype=np.int64), end_ms, value, label, level,
    )


def _ts(ms: int | None) -> datetime | None:
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


def copy_samples(cur: psycopg.Cursor, cols: Columns) -> int:
    """COPY the rows into ``samples``. The caller owns the transaction."""
    with metrics.STORE_WRITE_SECONDS.time():
        n = _copy_samples(cur, cols)
    metrics.SAMPLES_STORED.inc(n)
    return n


def _copy_samples(cur: psycopg.Cursor, cols: Columns) -> int:
    times = (_EPOCH + cols.time_ms.astype("timedelta64[ms]").astype(object)).tolist() if len(cols) else []
    patients = cols.patient.tolist()
    metrics = cols.metric.tolist()
    with cur.copy(f"COPY samples ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN") as cp:
        write = cp.write_row
        for i in range(len(times)):
            end = cols.end_ms[i]
            write((patients[i], cols.device[i], metrics[i], times[i],
                   None if end is None else _EPOCH + timedelta(milliseconds=end),
                   cols.value[i], cols.label[i], cols.level[i]))
    return len(times)


_UPSERT_ROLLUP = """
INSERT INTO {name} AS r (patient_id, metric, bucket, n, total, vmin, vmax)
SELECT p, m, to_timestamp(b / 1000.0), n, t, lo, hi
FROM unnest(%b::bigint[], %b::smallint[], %b::bigint[], %b::bigint[],
            %b::float8[], %b::float8[], %b::float8[]) AS u(p, m, b, n, t, lo, hi)
ON CONFLICT (patient_id, metric, bucket) DO UPDATE SET
    n = r.n + excluded.n, total = r.total + excluded.total,
    vmin = least(r.vmin, excluded.vmin), vmax = greatest(r.vmax, excluded.vmax)
"""


def update_rollups(cur: psycopg.Cursor, cols: Columns) -> None:
    """Fold a batch of new rows into the plain-PostgreSQL rollup tables (same transaction)."""
    has_value = np.fromiter((v is not None for v in cols.value), dtype=bool, count=len(cols))
    if has_value.any():
        patient = cols.patient[has_value]
        metric = cols.metric[has_value].astype(np.int64)
        t = cols.time_ms[has_value]
        values = np.asarray([v for v in cols.value if v is not None], dtype=np.float64)
        n = total = lo = hi = None
        for key, (name, width) in ROLLUPS.items():
            bucket = (t // width) * width
            # Key: patient, metric and bucket packed into one sortable composite.
            keys = np.rec.fromarrays([patient, metric, bucket], names="p,m,b")
            if n is None:
                uk, n, total, lo, hi = _aggregate_rec(keys, values)
            else:
                uk, n, total, lo, hi = _aggregate_rec(keys, total, n, lo, hi)
            patient, metric, t = uk["p"], uk["m"], uk["b"]
            values = total
            if key not in PG_MATERIALIZED:
                continue
            # Binary parameters (%b): dumping long lists as text arrays costs more than the upsert.
            cur.execute(
                _UPSERT_ROLLUP.format(name=name),
                (patient.tolist(), metric.tolist(), t.tolist(), n.tolist(), total.tolist(),
                 lo.tolist(), hi.tolist()),
            )
    sleep = np.flatnonzero(cols.metric == SLEEP_CODE)
    if len(sleep):
        nights: dict[tuple[int, int, str], float] = {}
        for i in sleep.tolist():
            start, end = int(cols.time_ms[i]), cols.end_ms[i]
            night = ((start - NIGHT_OFFSET_MS) // 86_400_000) * 86_400_000 + NIGHT_OFFSET_MS
            key = (int(cols.patient[i]), night, cols.label[i])
            nights[key] = nights.get(key, 0.0) + (end - start) / 60_000
        keys = sorted(nights)
        cur.execute(
            """
            INSERT INTO sleep_nightly AS s (patient_id, bucket, stage, minutes)
            SELECT p, to_timestamp(b / 1000.0), st, mi
            FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::float8[]) AS u(p, b, st, mi)
            ON CONFLICT (patient_id, bucket, stage) DO UPDATE SET minutes = s.minutes + excluded.minutes
            """,
            ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
             [nights[k] for k in keys]),
        )


def _aggregate_rec(keys: np.recarray, values, counts=None, mins=None, maxs=None):
    order = np.lexsort((keys["b"], keys["m"], keys["p"]))
    k = keys[order]
    change = np.r_[True, (k["p"][1:] != k["p"][:-1]) | (k["m"][1:] != k["m"][:-1]) | (k["b"][1:] != k["b"][:-1])]
    starts = np.flatnonzero(change)
    v = values[order]
    n = np.add.reduceat(counts[order] if counts is not None else np.ones(len(v), dtype=np.int64), starts)
    total = np.add.reduceat(v, starts)
    lo = np.minimum.reduceat((mins if mins is not None else values)[order], starts)
    hi = np.maximum.reduceat((maxs if maxs is not None else values)[order], starts)
    return k[starts], n, total, lo, hi


def rebuild_rollups(cur, patient_id: int, start: datetime, end: datetime) -> None:
    """Recompute the plain-PostgreSQL rollups of one patient over [start, end) from raw rows.

    Used for repair and by the tests that prove the incremental path exact. Bounds are
    widened to whole days (and nights) so that no bucket is half-recomputed.
    """
    day = timedelta(days=1)
    start = datetime(start.year, start.month, start.day, tzinfo=UTC) - day
    end = datetime(end.year, end.month, end.day, tzinfo=UTC) + 2 * day
    for key, (name, width) in ROLLUPS.items():
        if key not in PG_MATERIALIZED:
            continue
        cur.execute(f"DELETE FROM {name} WHERE patient_id = %s AND bucket >= %s AND bucket < %s",
                    (patient_id, start, end))
        cur.execute(
            f"""INSERT INTO {name} (patient_id, metric, bucket, n, total, vmin, vmax)
                SELECT patient_id, metric,
                       date_bin(make_interval(secs => %s), time, TIMESTAMPTZ 'epoch') AS bucket,
                       count(value), sum(value), min(value), max(value)
                FROM samples
                WHERE patient_id = %s AND time >= %s AND time < %s AND value IS NOT NULL
                GROUP BY 1, 2, 3""",
            (width / 1000, patient_id, start, end),
        )
    cur.execute("DELETE FROM sleep_nightly WHERE patient_id = %s AND bucket >= %s AND bucket < %s",
                (patient_id, start - day, end))
    cur.execute(
        f"""INSERT INTO sleep_nightly (patient_id, bucket, stage, minutes)
            SELECT patient_id,
                   date_bin(INTERVAL '1 day', time, TIMESTAMPTZ 'epoch' + INTERVAL '12 hours'),
                   label, sum(extract(epoch FROM end_time - time)) / 60.0
            FROM samples
            WHERE patient_id = %s AND metric = {SLEEP_CODE} AND time >= %s AND time < %s
            GROUP BY 1, 2, 3""",
        (patient_id, start - day, end),
    )


def queue_timescale_refresh(cur, min_ms: int, max_ms: int) -> None:
    """Late or imported rows older than the aggregate policies' window need a refresh."""
    horizon = datetime.now(UTC) - timedelta(days=3)
    if _ts(min_ms) < horizon:
        cur.execute(
            "INSERT INTO rollup_refresh_queue (range_start, range_end) VALUES (%s, %s)",
            (_ts(min_ms) - timedelta(days=1), _ts(max_ms) + timedelta(days=1)),
        )


def drain_timescale_refresh(conn: psycopg.Connection) -> int:
    """Refresh queued ranges (outside a transaction, as TimescaleDB requires)."""
    conn.autocommit = True
    rows = conn.execute(
        "DELETE FROM rollup_refresh_queue RETURNING range_start, range_end"
    ).fetchall()
    if not rows:
        return 0
    start = min(r[0] for r in rows)
    end = max(r[1] for r in rows)
    for view in ("samples_1m", "samples_1h", "samples_1d", "sleep_nightly"):
        conn.execute("CALL refresh_continuous_aggregate(%s, %s, %s)", (view, start, end))
    return len(rows)


# ---------------------------------------------------------------------- reading

def _cursor(cur):
    """The given cursor, or one on Django's connection."""
    if cur is not None:
        from contextlib import nullcontext

        return nullcontext(cur)
    return django_connection.cursor()


def read_series(
    patient_id: int, metric_code: int, start: datetime, end: datetime, resolution: str, cur=None,
    raw_limit: int = 10_001,
) -> Sequence[tuple]:
    """Rows at a resolution (raw, 1m, 1h, 1d): raw rows are ``(time, end_time, value, label,
    1, value, value)``, rollup rows ``(bucket, None, mean, None, n, vmin, vmax, total)``.
    Raw rows stop at ``raw_limit``: a caller serving N points asks for N + 1, so that it
    knows where the next page starts."""
    with _cursor(cur) as cur:
        if resolution == "raw":
            cur.execute(
                """SELECT time, end_time, value, label, 1, value, value FROM samples
                   WHERE patient_id = %s AND metric = %s AND time >= %s AND time < %s
                   ORDER BY time LIMIT %s""",
                [patient_id, metric_code, start, end, raw_limit],
            )
        elif resolution == "1m":
            cur.execute(
                """SELECT date_bin(INTERVAL '1 minute', time, TIMESTAMPTZ 'epoch') AS bucket, NULL,
                          avg(value), NULL, count(value), min(value), max(value), sum(value)
                   FROM samples
                   WHERE patient_id = %s AND metric = %s AND time >= %s AND time < %s AND value IS NOT NULL
                   GROUP BY 1 ORDER BY 1""",
                [patient_id, metric_code, start, end],
            )
        else:
            table = ROLLUPS[resolution][0]
            cur.execute(
                f"""SELECT bucket, NULL, total / NULLIF(n, 0), NULL, n, vmin, vmax, total FROM {table}
                    WHERE patient_id = %s AND metric = %s AND bucket >= %s AND bucket < %s
                    ORDER BY bucket""",
                [patient_id, metric_code, start, end],
            )
        return cur.fetchall()


def count_raw(patient_id: int, metric_code: int, start: datetime, end: datetime, limit: int,
              cur=None) -> int:
    with _cursor(cur) as cur:
        cur.execute(
            """SELECT count(*) FROM (SELECT 1 FROM samples WHERE patient_id = %s AND metric = %s
               AND time >= %s AND time < %s LIMIT %s) AS s""",
            [patient_id, metric_code, start, end, limit],
        )
        return cur.fetchone()[0]


def read_sleep(patient_id: int, start: datetime, end: datetime, cur=None) -> Sequence[tuple]:
    with _cursor(cur) as cur:
        cur.execute(
            """SELECT bucket, stage, minutes FROM sleep_nightly
               WHERE patient_id = %s AND bucket >= %s AND bucket < %s ORDER BY bucket, stage""",
            [patient_id, start, end],
        )
        return cur.fetchall()
