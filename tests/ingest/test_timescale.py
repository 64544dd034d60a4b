"""The TimescaleDB dialect against a real TimescaleDB (2.23, in PGlite, see docs/platform.md).

PGlite crashes on COPY and large executemany, so rows go in with small executemany
here; the production sink COPYs into the hypertable (tested on PostgreSQL).
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from ingest import storage
from tests.conftest import ROOT, free_port, wait_port

PGLITE = ROOT / "ingest" / "pglite"
pytestmark = [
    pytest.mark.timescale,
    pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed"),
    pytest.mark.skipif(not (PGLITE / "node_modules").exists(),
                       reason="ingest/pglite/node_modules is missing: run `make install`"),
]


@pytest.fixture(scope="module")
def tsdb():
    port = free_port()
    proc = subprocess.Popen(["node", "serve.mjs", str(port)], cwd=PGLITE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 90)
        conn = psycopg.connect(f"postgresql://postgres:postgres@127.0.0.1:{port}/postgres?sslmode=disable",
                               autocommit=True)
        yield conn
        conn.close()
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.fixture(scope="module")
def installed(tsdb):
    with tsdb.cursor() as cur:
        assert storage.install(cur, "timescale") == "timescale"
    return tsdb


T0 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def loaded(installed):
    rng = np.random.default_rng(5)
    rows = []
    for patient in (1, 2):
        for k in range(3 * 24 * 4):  # every 15 minutes over 3 days
            t = T0 + timedelta(minutes=15 * k)
            rows.append((patient, 1, t, None, float(rng.integers(50, 120)), None))
            rows.append((patient, 2, t, t + timedelta(minutes=1), float(rng.integers(0, 100)), None))
        for night in range(2):
            s = T0 + timedelta(days=night, hours=23)
            for j, stage in enumerate(["light", "deep", "rem", "light"]):
                rows.append((patient, 3, s + timedelta(minutes=30 * j), s + timedelta(minutes=30 * (j + 1)), None, stage))
    with installed.cursor() as cur:
        for i in range(0, len(rows), 200):
            cur.executemany("INSERT INTO samples (patient_id, metric, time, end_time, value, label) "
                            "VALUES (%s, %s, %s, %s, %s, %s)", rows[i:i + 200])
        for view in ("samples_1m", "samples_1h", "samples_1d", "sleep_nightly"):
            cur.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", (view,))
    return installed, rows


def test_samples_is_a_hypertable_compressed_by_patient_with_retention_and_aggregate_policies(installed):
    with installed.cursor() as cur:
        cur.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
        assert ("samples",) in cur.fetchall()
        cur.execute("SELECT attname, segmentby_column_index FROM timescaledb_information.compression_settings "
                    "WHERE hypertable_name = 'samples' AND segmentby_column_index IS NOT NULL ORDER BY 2")
        assert [r[0] for r in cur.fetchall()] == ["patient_id", "metric"]
        cur.execute("SELECT view_name FROM timescaledb_information.continuous_aggregates ORDER BY 1")
        assert [r[0] for r in cur.fetchall()] == ["samples_1d", "samples_1h", "samples_1m", "sleep_nightly"]
        cur.execute("SELECT proc_name FROM timescaledb_information.jobs WHERE hypertable_name = 'samples'")
        procs = {r[0] for r in cur.fetchall()}
        assert {"policy_retention"} <= procs and procs & {"policy_compression", "policy_columnstore"}


def test_installing_twice_is_harmless(installed):
    with installed.cursor() as cur:
        assert storage.install(cur, "timescale") == "timescale"


def test_the_aggregates_give_the_same_numbers_as_the_raw_rows(loaded):
    conn, rows = loaded
    hr = [(t, v) for p, m, t, _, v, _ in rows if p == 1 and m == 1]
    with conn.cursor() as cur:
        hourly = storage.read_series(1, 1, T0, T0 + timedelta(days=3), "1h", cur=cur)
        daily = storage.read_series(1, 1, T0, T0 + timedelta(days=3), "1d", cur=cur)
        raw_count = storage.count_raw(1, 1, T0, T0 + timedelta(days=3), 10_000, cur=cur)
        sleep = storage.read_sleep(1, T0 - timedelta(days=1), T0 + timedelta(days=3), cur=cur)
    assert raw_count == len(hr)
    assert len(hourly) == 72 and all(r[4] == 4 for r in hourly)
    first_hour = [v for t, v in hr if t < T0 + timedelta(hours=1)]
    assert hourly[0][2] == pytest.approx(np.mean(first_hour))
    assert (hourly[0][5], hourly[0][6]) == (min(first_hour), max(first_hour))
    assert [r[4] for r in daily] == [96, 96, 96]
    assert daily[1][7] == pytest.approx(sum(v for t, v in hr if T0 + timedelta(days=1) <= t < T0 + timedelta(days=2)))
    nights = {}
    for bucket, stage, minutes in sleep:
        nights.setdefault(bucket, {})[stage] = minutes
    assert list(nights.values()) == [{"deep": 30, "light": 60, "rem": 30}] * 2
    assert all(b.hour == 12 for b in nights)  # nights run noon to noon (UTC)


def test_compressed_chunks_still_answer_the_same_queries(loaded):
    conn, _ = loaded
    with conn.cursor() as cur:
        before = storage.read_series(2, 1, T0, T0 + timedelta(days=3), "raw", cur=cur)
        cur.execute("SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('samples') c")
        cur.execute("SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'samples' "
                    "AND is_compressed")
        assert cur.fetchone()[0] >= 1
        after = storage.read_series(2, 1, T0, T0 + timedelta(days=3), "raw", cur=cur)
    assert after == before and len(after) == 288


def test_imported_history_is_queued_and_refreshed_into_the_aggregates(loaded):
    conn, _ = loaded
    old = T0 - timedelta(days=30)
    with conn.cursor() as cur:
        cur.execute("INSERT INTO samples (patient_id, metric, time, value) VALUES (3, 1, %s, 80), (3, 1, %s, 90)",
                    (old, old + timedelta(seconds=30)))
        ms = int(old.timestamp() * 1000)
        storage.queue_timescale_refresh(cur, ms, ms + 30_000)
    assert storage.drain_timescale_refresh(conn) == 1
    with conn.cursor() as cur:
        rows = storage.read_series(3, 1, old - timedelta(hours=1), old + timedelta(hours=1), "1m", cur=cur)
        cur.execute("SELECT count(*) FROM samples_1m WHERE patient_id = 3")
        materialized = cur.fetchone()[0]
    assert [(r[4], r[2]) for r in rows] == [(2, 85.0)]
    assert materialized == 1
