"""Anomaly detection: the Faust worker against the pure detectors, in one run.

    python -m bench.detect [--patients 1000] [--days 2] [--state-patients 10000] [--json]

Starts its own Apache Kafka and a fresh database (``bench_environment``). Measures:

* ``worker_samples_per_s``: the simulated cohort's uploads (as phones cut them, one
  per 15 minutes of event time) are put in samples.v1 first; then one
  ``run_detector_worker`` process (RocksDB store) works through them. The rate is
  taken between the first and the last offset commit of its group, so the group join
  is not counted;
* ``pure_samples_per_s``: the same samples, already in columns, through the same
  ``PatientMonitor`` objects in the same batches, in this process: the ceiling;
* ``alert_latency_p99_s``: with the worker and ``run_alert_sink`` running, one upload
  per patient that completes a high-heart-rate-at-rest episode (its newest sample
  moves the event-time watermark past the 10th minute) is sent; latency = from the
  broker's ack of that upload to the alert row being readable in PostgreSQL;
* ``state_bytes_per_patient``: the pickled ``PatientMonitor`` (what the changelog
  and RocksDB hold) after 30 simulated days, averaged over ``--state-patients``
  monitors (built from 100 simulated histories, copied), plus the resident memory
  they take in a process (``state_rss_bytes_per_patient``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime

from bench.common import ROOT, bench_environment, percentile, spawn, stop


def _setup_django(env: dict) -> None:
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def make_uploads(patients: int, days: int, seed: int, window_min: int = 15):
    """[(patient, samples.v1 message, n samples, columns)] in event-time order."""
    from ingest.simulator import simulate_cohort
    from streams.detectors import Samples
    from streams.replay import frame_uploads, upload_message

    start = datetime(2026, 1, 1, tzinfo=UTC)
    cohort = simulate_cohort(patients, days, start=start, seed=seed)
    items = []
    for pid, frame in cohort.frames.items():
        for i, up in enumerate(frame_uploads(frame, window_ms=window_min * 60_000)):
            items.append((up[0]["time"], pid, upload_message(pid, f"b{pid}-{i}", up), len(up),
                          Samples.from_records(up)))
    items.sort(key=lambda x: (x[0], x[1]))
    return [x[1:] for x in items], cohort


def pure_rate(items) -> float:
    """The same batches through the same monitors, no Kafka, no JSON, no Faust."""
    from django.conf import settings

    from streams.detectors import PatientMonitor, Samples

    take = settings.DETECTOR_TAKE_MESSAGES  # the worker's batches: a take, grouped by patient
    monitors: dict[int, PatientMonitor] = {}
    n = 0
    t0 = time.perf_counter()
    for i in range(0, len(items), take):
        groups: dict[int, list] = {}
        for pid, _, k, cols in items[i:i + take]:
            groups.setdefault(pid, []).append(cols)
            n += k
        for pid, parts in groups.items():
            mon = monitors.get(pid)
            if mon is None:
                mon = monitors[pid] = PatientMonitor(lateness_s=600)
            mon.update(Samples.concat(parts))
    return n / (time.perf_counter() - t0)


def committed(group: str, topic: str) -> int:
    """A group's committed offsets on a topic, summed (no join)."""
    from kafka import KafkaConsumer, TopicPartition

    from lib import kafka

    c = KafkaConsumer(bootstrap_servers=kafka.bootstrap(), group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
        return sum(c.committed(tp) or 0 for tp in tps)
    finally:
        c.close()


def state_size(n_patients: int, seed: int) -> tuple[float, float]:
    """Mean pickled state bytes after 30 days, and RSS bytes per patient for n copies."""
    import gc

    import psutil

    from ingest.simulator import simulate_cohort
    from streams.replay import replay_frame

    cohort = simulate_cohort(100, 30, start=datetime(2026, 1, 1, tzinfo=UTC), seed=seed + 1)
    blobs = [pickle.dumps(replay_frame(f)[1], protocol=pickle.HIGHEST_PROTOCOL)
             for f in cohort.frames.values()]
    mean_bytes = sum(len(b) for b in blobs) / len(blobs)
    gc.collect()
    before = psutil.Process().memory_info().rss
    live = [pickle.loads(blobs[i % len(blobs)]) for i in range(n_patients)]
    gc.collect()
    rss = (psutil.Process().memory_info().rss - before) / n_patients
    del live
    return mean_bytes, rss


def latency(env: dict, patients: list[int], t_after_ms: int) -> list[float]:
    """Send one completing upload per patient; time from broker ack to a readable alert row."""
    import psycopg

    from alerts.models import Alert
    from lib import kafka
    from streams.replay import upload_message

    seen: dict[int, float] = {}
    done = threading.Event()

    def poll() -> None:
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            while not done.is_set():
                rows = conn.execute(
                    f"SELECT patient_id FROM {Alert._meta.db_table} WHERE detector = 'hr_high_at_rest' "
                    "AND window_start >= to_timestamp(%s / 1000.0)", (t_after_ms,)).fetchall()
                now = time.perf_counter()
                for (p,) in rows:
                    seen.setdefault(p, now)
                if len(seen) >= len(patients):
                    return
                time.sleep(0.005)

    p = kafka.producer()
    # First the episode itself, not yet final (the event-time lateness holds it back)...
    for pid in patients:
        run = [{"metric": "heart_rate", "time": t_after_ms + m * 60_000, "value": 132.0} for m in range(15)]
        p.send(env["KAFKA_TOPIC_SAMPLES"], key=kafka.patient_key(pid),
               value=upload_message(pid, f"lat-a-{pid}", run))
    p.flush()
    time.sleep(3)
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    sent: dict[int, float] = {}
    # ...then the sample that moves the watermark past it: now the condition is complete.
    for pid in patients:
        last = [{"metric": "heart_rate", "time": t_after_ms + 26 * 60_000, "value": 70.0}]
        fut = p.send(env["KAFKA_TOPIC_SAMPLES"], key=kafka.patient_key(pid),
                     value=upload_message(pid, f"lat-b-{pid}", last))
        fut.get(timeout=10)
        sent[pid] = time.perf_counter()
        time.sleep(0.02)
    poller.join(60)
    done.set()
    return [seen[pid] - sent[pid] for pid in patients if pid in seen]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--state-patients", type=int, default=10_000)
    ap.add_argument("--latency-patients", type=int, default=100)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--window-min", type=int, default=15,
                    help="minutes of event time per upload (phones: 15)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    log_dir = ROOT / "var" / "bench" / "detect"
    out: dict = {"patients": args.patients, "days": args.days, "upload_minutes": args.window_min}
    with bench_environment("hs_bench_detect", log_dir) as env:
        env = dict(env, KAFKA_TOPIC_SAMPLES="samples.v1", KAFKA_TOPIC_ALERTS="alerts.v1",
                   DETECTOR_STORE="rocksdb://", DETECTOR_APP_ID="bench-detect",
                   DETECTOR_DATA_DIR=tempfile.mkdtemp(prefix="hs-bench-faust-"),
                   ALERT_SINK_BATCH_SECONDS="0.02")
        _setup_django(env)
        from django.conf import settings

        from lib import kafka

        items, cohort = make_uploads(args.patients, args.days, args.seed, args.window_min)
        n_samples = sum(k for _, _, k, _ in items)
        out["messages"], out["samples"] = len(items), n_samples
        pure = pure_rate(items)

        import psycopg

        from care.models import Patient

        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(f"INSERT INTO {Patient._meta.db_table} (id, display_name, timezone, active, created_at) "
                         "SELECT g, 'bench ' || g, 'UTC', true, now() FROM generate_series(1, %s) g",
                         (args.patients,))
        kafka.ensure_topics()
        p = kafka.producer()
        for pid, msg, _, _ in items:
            p.send(settings.KAFKA_TOPIC_SAMPLES, key=kafka.patient_key(pid), value=msg)
        p.flush()
        sink = spawn([sys.executable, "manage.py", "run_alert_sink"], env, log_dir / "sink.log")
        worker = spawn([sys.executable, "manage.py", "run_detector_worker"], env, log_dir / "worker.log")
        try:
            first = last = None
            total_msgs = len(items)
            deadline = time.monotonic() + 1800
            done = 0
            while time.monotonic() < deadline:
                done = committed(env["DETECTOR_APP_ID"], settings.KAFKA_TOPIC_SAMPLES)
                now = time.perf_counter()
                if done > 0 and first is None:
                    first = (now, done)
                if done >= total_msgs:
                    last = (now, done)
                    break
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited ({worker.returncode}); see {log_dir}/worker.log")
                time.sleep(0.25)
            if first is None or last is None:
                raise RuntimeError(f"the worker did not finish ({done}/{total_msgs} messages)")
            frac = (last[1] - first[1]) / total_msgs
            worker_rate = n_samples * frac / max(last[0] - first[0], 1e-9)
            t_after = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000) + (args.days + 1) * 86_400_000
            lat = latency(env, list(range(1, min(args.latency_patients, args.patients) + 1)), t_after)
        finally:
            stop(worker, sink)
        out.update(
            worker_samples_per_s=round(worker_rate),
            pure_samples_per_s=round(pure),
            ratio=round(worker_rate / pure, 3),
            alert_latency_p50_s=round(percentile(lat, 50), 3),
            alert_latency_p99_s=round(percentile(lat, 99), 3),
            alerts_measured=len(lat),
        )
    state_bytes, rss_bytes = state_size(args.state_patients, args.seed)
    out.update(state_bytes_per_patient=round(state_bytes), state_rss_bytes_per_patient=round(rss_bytes),
               state_patients=args.state_patients)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>28}: {v}")
    return out


if __name__ == "__main__":
    main()
