"""End to end over real processes: HTTP -> gunicorn -> broker -> sink -> PostgreSQL.

The sink is killed with SIGKILL in the middle of the stream and restarted: every
sample the API accepted must be stored exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection

from bench.common import stop
from care.models import Device, Patient
from ingest.schema import now_ms
from tests.conftest import ROOT, free_port, run_manage, wait_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def gunicorn(env: dict, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--worker-class", "gthread", "--threads", "4"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def counts(patient_ids: list[int]) -> tuple[int, int]:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT (patient_id, metric, time)) FROM samples "
                    "WHERE patient_id = ANY(%s)", [patient_ids])
        return cur.fetchone()


def test_every_accepted_sample_is_stored_exactly_once_across_a_sink_kill(subprocess_env):
    patients = [Patient.objects.create(display_name=f"e2e {i}") for i in range(3)]
    tokens = {p.pk: Device.issue(p, "watch")[1] for p in patients}
    port = free_port()
    api = gunicorn(subprocess_env, port)
    sink = run_manage(["run_ingest_sink"], subprocess_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                      start_new_session=True)
    procs = [api, sink]
    try:
        wait_port(port, 30)
        start = now_ms() - 20 * 86_400_000
        jobs = [(p.pk, k) for k in range(24) for p in patients]
        session = requests.Session()

        def push(job) -> int:
            pid, k = job
            t0 = start + k * 500 * 60_000
            body = {"batch_id": f"e2e-{k}",
                    "samples": [{"metric": "heart_rate", "time": t0 + i * 60_000, "value": 50 + (i % 40)}
                                for i in range(500)]}
            for _ in range(20):
                r = session.post(f"http://127.0.0.1:{port}/api/v1/ingest/batches", json=body,
                                 headers={"Authorization": f"Device {tokens[pid]}"}, timeout=30)
                if r.status_code == 202:
                    return 500
                assert r.status_code in (429, 503), r.text
                time.sleep(0.5)
            raise AssertionError("batch never accepted")

        accepted = 0
        with ThreadPoolExecutor(4) as pool:
            first = list(pool.map(push, jobs[:36]))
            accepted += sum(first)
            # Let the sink take part of the stream, then kill it without warning.
            deadline = time.monotonic() + 90
            while counts([p.pk for p in patients])[0] == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert counts([p.pk for p in patients])[0] > 0, "the sink stored nothing in 90 s"
            os.killpg(sink.pid, signal.SIGKILL)
            sink.wait(10)
            accepted += sum(pool.map(push, jobs[36:]))
        sink = run_manage(["run_ingest_sink"], subprocess_env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(sink)
        deadline = time.monotonic() + 120
        while counts([p.pk for p in patients])[0] < accepted and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # anything re-delivered after the restart would land by now
        total, distinct = counts([p.pk for p in patients])
        assert accepted == 72 * 500
        assert total == accepted
        assert distinct == total
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM ingest_ingestbatch WHERE patient_id = ANY(%s) AND stored_at IS NULL",
                        [[p.pk for p in patients]])
            assert cur.fetchone()[0] == 0
    finally:
        stop(*procs)
