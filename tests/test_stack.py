"""`make run` end to end: the launcher starts the stack, the simulator's data and a
phone's upload are readable through the read API within 10 s, and Ctrl-C stops every
process it started."""

from __future__ import annotations

import mailbox
import os
import re
import signal
import subprocess
import time

import psutil
import pytest
import requests
from django.db import connection

from ingest.schema import now_ms
from tests.conftest import free_port, run_manage, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


# (job in var/metrics-targets.json, metric sample name): counters a running stack must show
_STACK_COUNTERS = [
    ("api", "healthstream_ingest_batches_total"),
    ("api", "healthstream_ingest_samples_total"),
    ("sink", "healthstream_samples_stored_total"),
    ("detectors", "healthstream_detector_samples_total"),
    ("detectors", "healthstream_detector_alerts_total"),
    ("alerts", "healthstream_alerts_stored_total"),
]


def _scrape_all(var, wanted) -> dict[str, float] | None:
    """Sum of each wanted counter over its job's scrape, or None while one is still 0."""
    import json

    from prometheus_client.parser import text_string_to_metric_families

    targets = {g["labels"]["job"]: g["targets"][0] for g in json.loads((var / "metrics-targets.json").read_text())}
    totals = {}
    for job, name in wanted:
        text = requests.get(f"http://{targets[job]}/metrics", timeout=10).text
        totals[f"{job}:{name}"] = sum(s.value for fam in text_string_to_metric_families(text)
                                      for s in fam.samples if s.name == name)
    return totals if all(v > 0 for v in totals.values()) else None


def _declared_metrics(var) -> set[str]:
    """Every metric name (with its exposition suffixes) that some process of the stack serves."""
    import json

    from prometheus_client.parser import text_string_to_metric_families

    names: set[str] = set()
    for group in json.loads((var / "metrics-targets.json").read_text()):
        text = requests.get(f"http://{group['targets'][0]}/metrics", timeout=10).text
        for fam in text_string_to_metric_families(text):
            names |= {fam.name + suffix for suffix in ("", "_total", "_bucket", "_count", "_sum")}
            names |= {s.name for s in fam.samples}
    return names


def _dashboard_metrics() -> set[str]:
    """The metric names the Grafana dashboard's queries use."""
    import json

    from tests.conftest import ROOT

    dash = json.loads((ROOT / "deploy" / "grafana" / "healthstream.json").read_text())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    return set(re.findall(r"\b((?:healthstream|django)_[a-z_]+)", exprs))


def test_the_stack_serves_pushed_data_through_the_read_api_within_10_s_and_stops_cleanly(subprocess_env, tmp_path):
    port = free_port()
    env = dict(subprocess_env, HEALTHSTREAM_VAR_DIR=str(tmp_path), CACHE_KEY_PREFIX=f"stack-{port}")
    stack = run_manage(["run_stack", "--port", str(port), "--patients", "2"], env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        os.set_blocking(stack.stdout.fileno(), False)

        def output() -> list[str]:
            chunk = stack.stdout.read()
            if chunk:
                lines.extend(chunk.decode(errors="replace").splitlines())
            assert stack.poll() is None, "\n".join(lines[-40:])
            return lines

        def banner_token():
            for line in output():
                m = re.search(r"Authorization: Device (hsd_\S+)", line)
                if m:
                    return m.group(1)
            return None

        device_token = wait_for(banner_token, 180, "the stack's banner")
        health = requests.get(f"{base}/healthz", timeout=10)
        assert health.status_code == 200, health.text
        assert {"database", "redis", "kafka"} <= set(health.json()["checks"])

        r = requests.post(f"{base}/api/v1/auth/token",
                          json={"username": "patient01", "password": "healthstream-demo-01"}, timeout=10)
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Token {r.json()['token']}"}
        me = r.json()["me"]
        patient_id = me["patient"]["id"] if isinstance(me.get("patient"), dict) else me["patient_id"]

        def simulator_data():
            got = requests.get(f"{base}/api/v1/patients/{patient_id}/samples",
                               params={"metric": "heart_rate", "resolution": "1h"}, headers=auth, timeout=10)
            return got.status_code == 200 and len(got.json()["points"]) > 0

        wait_for(simulator_data, 120, "the simulator's heart rate in the read API")
        wait_for(lambda: any("backfill sent" in line for line in output()), 120, "the simulator's backfill")

        def backlog_stored():
            with connection.cursor() as cur:
                cur.execute("SELECT count(*) FROM ingest_ingestbatch WHERE stored_at IS NULL")
                return cur.fetchone()[0] == 0

        wait_for(backlog_stored, 180, "the sink to store the backfill")

        t = now_ms() - 30_000
        sent = time.monotonic()
        pushed = requests.post(f"{base}/api/v1/ingest/batches", headers={"Authorization": f"Device {device_token}"},
                               json={"batch_id": "stack-test", "samples": [
                                   {"metric": "hrv_rmssd", "time": t, "value": 123.5}]}, timeout=10)
        assert pushed.status_code == 202, pushed.text

        def readable():
            got = requests.get(f"{base}/api/v1/patients/{patient_id}/samples",
                               params={"metric": "hrv_rmssd", "resolution": "raw",
                                       "start": time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 86400))}, headers=auth, timeout=10)
            return any(p.get("value") == 123.5 for p in got.json().get("points", []))

        wait_for(readable, 10, "the pushed sample in the read API")
        assert time.monotonic() - sent < 10
        # the upload followed by its request id: the API's answer, then the sink's and the
        # detector worker's log lines
        rid = pushed.headers["X-Request-ID"]
        for label in ("sink", "detectors"):
            wait_for(lambda label=label: any(line.lstrip().startswith(f"{label} |")
                                             and f"batch stack-test (request {rid})" in line
                                             for line in output()), 30, f"the upload's id in the {label} log")

        # A red alert row (written as the alert sink writes it) reaches the stack's SMTP
        # sink and its signed-webhook receiver within 30 s.
        from datetime import timedelta

        from django.utils import timezone

        from alerts.models import Alert

        start = timezone.now() - timedelta(minutes=20)
        alert = Alert.objects.create(patient_id=patient_id, detector="hr_high_at_rest", severity="red",
                                     window_start=start, window_end=start + timedelta(minutes=10))
        written = time.monotonic()
        wait_for(lambda: any("verified alert.red delivery" in line and f"alert {alert.pk} " in line
                             for line in output()), 30, "the signed webhook at the stack's receiver")
        mail = mailbox.Maildir(tmp_path / "mail", create=False)
        wait_for(lambda: any(f"#alert-{alert.pk}" in m.get_payload() for m in mail), 30,
                 "the email in the stack's SMTP sink")
        print(f"make run: red alert row to webhook and email in {time.monotonic() - written:.1f} s")
        assert time.monotonic() - written < 30

        # A phone's 30 minutes at 140 bpm at rest becomes an alert row through the worker and
        # the alert sink; then every process's /metrics (var/metrics-targets.json) shows it.
        from care.models import Device, Patient

        racer = Patient.objects.create(display_name="metrics")
        _, token = Device.issue(racer, "band")
        t0 = now_ms() - 60 * 60_000
        minutes = [{"metric": "heart_rate", "time": t0 + i * 60_000, "value": 140.0 if i < 30 else 70.0}
                   for i in range(55)]
        upload = requests.post(f"{base}/api/v1/ingest/batches", headers={"Authorization": f"Device {token}"},
                               json={"batch_id": "stack-metrics", "samples": minutes}, timeout=10)
        assert upload.status_code == 202, upload.text
        wait_for(lambda: Alert.objects.filter(patient=racer).exists(), 90, "the racing heart's alert row")
        totals = wait_for(lambda: _scrape_all(tmp_path, _STACK_COUNTERS), 30, "every counter above 0")
        print("metrics scraped during make run: " + ", ".join(f"{k}={v:g}" for k, v in sorted(totals.items())))
        missing = _dashboard_metrics() - _declared_metrics(tmp_path)
        assert not missing, f"the Grafana dashboard uses metrics no process serves: {sorted(missing)}"
    except BaseException:
        # the stack's own lines (pytest shows them with the failure), without the broker client's chatter
        print("\n".join(line for line in lines if "kafka.net" not in line)[-20_000:])
        print("\n".join(line for line in lines if "stack |" in line or "notify |" in line))
        raise
    finally:
        children = psutil.Process(stack.pid).children(recursive=True) if stack.poll() is None else []
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            raise
    time.sleep(1)
    left = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes left behind: {[p.cmdline()[:3] for p in left]}"
