"""Start-up benchmark: ``python -m bench.startup [--json]``.

How long a newcomer waits for forecasts: starts the stack as ``make run`` does after
``make install`` (``manage.py run_stack`` with DEBUG=1, the default 20 simulated
patients) on a fresh var/ folder and free ports, then polls its database until the
first forecast row exists (``first_forecast_s``) and until every simulated patient has a
resting heart rate forecast (``all_patients_forecast_s``); checks that the read API the
patient page uses (``/api/v1/patients/{id}/forecasts``) serves the band (p10/p90) for
``patient01``. Stops the stack with Ctrl-C (SIGINT) and waits for it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import requests

from bench.common import ROOT, free_port


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _milestones(path: Path, t0: float, seen: dict) -> None:
    """Seconds from start to the first stack line that contains each milestone text."""
    text = path.read_text(errors="replace") if path.exists() else ""
    for key, needle in (("banner_s", "Authorization: Device"), ("backfill_sent_s", "backfill sent"),
                        ("forecasts_queued_s", "first forecasts queued")):
        if key not in seen and needle in text:
            seen[key] = round(time.monotonic() - t0, 1)


def _forecast_counts(pg_port: int) -> tuple[int, int, int] | None:
    """(active patients, patients with a resting_hr forecast, forecast rows), or None
    while the database is not reachable or not migrated."""
    try:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg_port}/healthstream", connect_timeout=3) as conn:
            patients = conn.execute("SELECT count(*) FROM care_patient WHERE active").fetchone()[0]
            with_fc, rows = conn.execute(
                "SELECT count(DISTINCT patient_id) FILTER (WHERE metric = 'resting_hr'), count(*) "
                "FROM forecasting_forecast").fetchone()
            return int(patients), int(with_fc), int(rows)
    except psycopg.Error:
        return None


def _api_band(api_port: int) -> bool:
    """Does the read API serve patient01's resting heart rate band?"""
    base = f"http://127.0.0.1:{api_port}/api/v1"
    r = requests.post(f"{base}/auth/token", json={"username": "patient01", "password": "healthstream-demo-01"},
                      timeout=10)
    if r.status_code != 200:
        return False
    me = r.json()["me"]
    pid = me["patient"]["id"] if isinstance(me.get("patient"), dict) else me["patient_id"]
    got = requests.get(f"{base}/patients/{pid}/forecasts", params={"metric": "resting_hr"},
                       headers={"Authorization": f"Token {r.json()['token']}"}, timeout=10)
    if got.status_code != 200:
        return False
    body = json.dumps(got.json())
    return '"p10"' in body and '"p90"' in body


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ap.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    ap.add_argument("--patients", type=int, default=20, help="simulated patients (make run's default)")
    args = ap.parse_args(argv)
    var = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    ports = {name: free_port() for name in ("port", "kafka-port", "kafka-controller-port", "redis-port",
                                            "postgres-port")}
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update(DEBUG="1", HEALTHSTREAM_VAR_DIR=str(var), PYTHONUNBUFFERED="1",
               CACHE_KEY_PREFIX=f"startup-{ports['port']}")
    out = var / "stack-stdout.log"
    argv_ = [sys.executable, str(ROOT / "manage.py"), "run_stack", "--patients", str(args.patients),
             *[a for name, p in ports.items() for a in (f"--{name}", str(p))]]
    report: dict = {"patients": args.patients, "var": str(var)}
    t0 = time.monotonic()
    stack = subprocess.Popen(argv_, cwd=ROOT, env=env, stdout=open(out, "ab"),  # noqa: SIM115
                             stderr=subprocess.STDOUT, start_new_session=True)
    log(f"run_stack started (output in {out})")
    try:
        while time.monotonic() - t0 < args.timeout:
            if stack.poll() is not None:
                report["error"] = f"the stack exited with {stack.returncode}"
                break
            _milestones(out, t0, report)
            counts = _forecast_counts(ports["postgres-port"])
            if counts:
                patients, with_fc, rows = counts
                if rows and "first_forecast_s" not in report:
                    report["first_forecast_s"] = round(time.monotonic() - t0, 1)
                    log(f"first forecast row after {report['first_forecast_s']} s")
                if patients and with_fc >= patients:
                    report["all_patients_forecast_s"] = round(time.monotonic() - t0, 1)
                    report["forecast_rows"] = rows
                    report["api_band_patient01"] = _api_band(ports["port"])
                    break
            time.sleep(2)
        else:
            report["error"] = f"no forecast for every patient within {args.timeout:.0f} s"
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            report["killed"] = True
    report["stopped_s"] = round(time.monotonic() - t0, 1)
    if "error" in report:
        log(f"kept the stack's folder for its logs: {var}")
    else:
        shutil.rmtree(var, ignore_errors=True)
        del report["var"]
    for key in ("first_forecast_s", "all_patients_forecast_s"):
        if key in report:
            print(f"{key.replace('_', ' ')}: {report[key]} s ({report[key] / 60:.1f} min)", flush=True)
    if args.json:
        print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
