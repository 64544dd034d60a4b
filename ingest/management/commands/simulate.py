"""python manage.py simulate: stream a synthetic cohort through the HTTP ingest API."""

from __future__ import annotations

import csv
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ingest.demo import register_cohort
from ingest.simulator import DAY_MS, iter_uploads, make_profiles, plan_episodes, simulate_patient


class Command(BaseCommand):
    help = "Simulate patients' watches: backfill history fast, then stream in real time."

    def add_arguments(self, parser):
        parser.add_argument("--api", default="http://127.0.0.1:8000")
        parser.add_argument("--patients", type=int, default=20)
        parser.add_argument("--backfill-days", type=int, default=21)
        parser.add_argument("--days-ahead", type=int, default=7, help="simulated days after now")
        parser.add_argument("--interval", type=float, default=10.0, help="seconds between real-time uploads")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--threads", type=int, default=4)
        parser.add_argument("--no-realtime", action="store_true", help="stop after the backfill")
        parser.add_argument("--truth", default=str(settings.VAR_DIR / "simulator" / "episodes.csv"))

    def handle(self, *args, **o):
        if o["patients"] < 1:
            raise CommandError("--patients must be at least 1")
        cohort = register_cohort(o["patients"])
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=o["backfill_days"])
        start_ms = int(start.timestamp() * 1000)
        days = o["backfill_days"] + o["days_ahead"] + 1
        profiles = make_profiles(o["patients"], o["seed"])
        episodes = plan_episodes(profiles, start_ms, days, o["seed"])
        ids = {i: patient.pk for i, patient, _ in cohort}
        truth = Path(o["truth"])
        truth.parent.mkdir(parents=True, exist_ok=True)
        with truth.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["patient_id", "sim_index", "kind", "start", "end"])
            for e in episodes:
                w.writerow([ids[e.patient], e.patient, e.kind,
                            datetime.fromtimestamp(e.start_ms / 1000, UTC).isoformat(),
                            datetime.fromtimestamp(e.end_ms / 1000, UTC).isoformat()])
        self.stdout.write(f"simulator: {len(cohort)} patients, {len(episodes)} episodes "
                          f"(ground truth in {truth})")
        frames = {i: simulate_patient(p, start_ms, days, episodes, o["seed"]) for i, p in
                  zip(range(1, o["patients"] + 1), profiles, strict=True)}
        tokens = {i: token for i, _, token in cohort}
        counts = {"batches": 0, "samples": 0, "errors": 0}
        lock = threading.Lock()
        local = threading.local()

        def session() -> requests.Session:
            if not hasattr(local, "s"):
                local.s = requests.Session()
            return local.s

        def push(i: int, samples: list[dict]) -> None:
            body = {"schema_version": 1, "batch_id": f"sim{i:03d}-{samples[0]['time']}-{len(samples)}",
                    "samples": samples}
            for attempt in range(8):
                r = session().post(f"{o['api']}/api/v1/ingest/batches", json=body,
                                   headers={"Authorization": f"Device {tokens[i]}"}, timeout=30)
                if r.status_code == 202:
                    with lock:
                        counts["batches"] += 1
                        counts["samples"] += len(samples)
                    return
                if r.status_code in (429, 503):
                    time.sleep(float(r.headers.get("Retry-After", 2 ** attempt)) if r.status_code == 429 else 2 ** attempt * 0.2)
                    continue
                break
            with lock:
                counts["errors"] += 1
            self.stderr.write(f"simulator: upload refused ({r.status_code}): {r.text[:300]}")

        def send_range(i: int, lo_ms: int, hi_ms: int, window_ms: int) -> None:
            f = frames[i]
            t = f["time"].to_numpy()
            end = np.where(f["end"].to_numpy() >= 0, f["end"].to_numpy(), t)
            sel = (end > lo_ms) & (end <= hi_ms)
            for samples in iter_uploads(f[sel], max_samples=500, window_ms=window_ms):
                push(i, samples)

        now_ms = int(time.time() * 1000)
        started = time.monotonic()
        with ThreadPoolExecutor(o["threads"]) as pool:
            list(pool.map(lambda i: send_range(i, 0, now_ms, DAY_MS), frames))
        self.stdout.write(f"simulator: backfill sent {counts['samples']:,} samples in {counts['batches']:,} "
                          f"batches in {time.monotonic() - started:.1f}s ({counts['errors']} refused)")
        if o["no_realtime"]:
            return
        last = now_ms
        end_ms = start_ms + days * DAY_MS
        reported = time.monotonic()
        while last < end_ms:
            time.sleep(o["interval"])
            now_ms = int(time.time() * 1000)
            with ThreadPoolExecutor(o["threads"]) as pool:
                list(pool.map(lambda i, lo=last, hi=now_ms: send_range(i, lo, hi, 0), frames))
            last = now_ms
            if time.monotonic() - reported > 60:
                reported = time.monotonic()
                self.stdout.write(f"simulator: {counts['samples']:,} samples in {counts['batches']:,} batches so far")
        self.stdout.write("simulator: reached the end of the simulated days")
