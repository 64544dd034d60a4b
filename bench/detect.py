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
* ``alert_latency_p99_s``: with the worker and ``run_alert_sink`` running (idle), one upload
  per patient that completes a high-heart-rate-at-rest episode (its newest sample
  moves the event-time watermark past the 10th minute) is sent; latency = from the
  broker's ack of that upload to the alert row being readable in PostgreSQL;
* ``alert_latency_from_ingest_p99_s``: under load, not idle. The ingest API
  (gunicorn) runs beside the worker and the sink while a load thread keeps feeding
  samples.v1 with further simulated days of the other patients at
  ``--load-fraction`` of the measured worker rate; for each latency patient the
  upload that completes a high-heart-rate-at-rest episode is POSTed to
  ``/api/v1/ingest/batches``; latency = from its HTTP 202 to the alert row being
  readable in PostgreSQL (``alerts_measured_from_ingest`` of them);
* ``state_bytes_per_patient``: a patient's state as the changelog and RocksDB hold it
  (``PatientState.dumps``: the compact pickle, LZ4 with the state dictionary) after 30 simulated days
  with the episode logic (illness episode, budgets), averaged over 100 simulated
  histories (``state_bytes_per_patient_max``: the largest; ``state_pickle_bytes_per_patient``:
  before compression), plus the resident memory ``--state-patients`` decoded
  states take in a process (``state_rss_bytes_per_patient``).
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

from bench.common import ROOT, bench_environment, free_port, percentile, spawn, stop


def _setup_django(env: dict) -> None:
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def make_uploads(patients: int, days: int, seed: int, window_min: int = 15, start_day: int = 0,
                 only: set[int] | None = None):
    """[(patient, samples.v1 message, n samples, columns)] in event-time order."""
    from datetime import timedelta

    from ingest.simulator import simulate_cohort
    from streams.detectors import Samples
    from streams.replay import frame_uploads, upload_message

    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=start_day)
    cohort = simulate_cohort(patients, days, start=start, seed=seed)
    items = []
    for pid, frame in cohort.frames.items():
        if only is not None and pid not in only:
            continue
        for i, up in enumerate(frame_uploads(frame, window_ms=window_min * 60_000)):
            items.append((up[0]["time"], pid, upload_message(pid, f"b{pid}-{start_day}-{i}", up), len(up),
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


def state_size(n_patients: int, seed: int) -> tuple[float, float, int, float]:
    """Mean and max state blob bytes after 30 days, the raw pickle's mean, RSS per decoded state."""
    import gc

    import psutil

    from ingest.simulator import simulate_cohort
    from streams.processor import PatientState
    from streams.replay import replay_frame

    cohort = simulate_cohort(100, 30, start=datetime(2026, 1, 1, tzinfo=UTC), seed=seed + 1)
    states = [PatientState(replay_frame(f)[1], offset=10**6) for f in cohort.frames.values()]
    blobs = [st.dumps() for st in states]
    raw = [len(pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL)) for st in states]
    mean_bytes = sum(len(b) for b in blobs) / len(blobs)
    gc.collect()
    before = psutil.Process().memory_info().rss
    live = [PatientState.loads(blobs[i % len(blobs)]) for i in range(n_patients)]
    gc.collect()
    rss = (psutil.Process().memory_info().rss - before) / n_patients
    del live
    return mean_bytes, rss, max(len(b) for b in blobs), sum(raw) / len(raw)


def load_feeder(env: dict, patients: range, start_day: int, days: int, seed: int, rate: float,
                stop_evt: threading.Event) -> threading.Thread:
    """Keep samples.v1 busy at ``rate`` samples/s with further days of these patients."""
    from lib import kafka

    items, _ = make_uploads(len(patients) + patients.start - 1, days, seed + 7, start_day=start_day,
                            only=set(patients))

    def run() -> None:
        p = kafka.producer()
        t0 = time.perf_counter()
        sent = 0
        for pid, msg, k, _ in items:
            if stop_evt.is_set():
                break
            p.send(env["KAFKA_TOPIC_SAMPLES"], key=kafka.patient_key(pid), value=msg)
            sent += k
            ahead = sent / rate - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)
        p.flush()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def alert_poller(env: dict, patients: list[int], t_after_ms: int) -> tuple[threading.Thread, dict, threading.Event]:
    """A thread noting when each patient's high-heart-rate alert after ``t_after_ms``
    becomes readable in PostgreSQL (``seen``: patient -> perf_counter); set ``done`` to stop."""
    import psycopg

    from alerts.models import Alert

    seen: dict[int, float] = {}
    done = threading.Event()

    def poll() -> None:
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            while not done.is_set():
                rows = conn.execute(
                    f"SELECT patient_id FROM {Alert._meta.db_table} WHERE detector = 'hr_high_at_rest' "
                    "AND window_start >= to_timestamp(%s / 1000.0) AND patient_id = ANY(%s)",
                    (t_after_ms, list(patients))).fetchall()
                now = time.perf_counter()
                for (p,) in rows:
                    seen.setdefault(p, now)
                if len(seen) >= len(patients):
                    return
                time.sleep(0.005)

    return threading.Thread(target=poll, daemon=True), seen, done


def latency_from_ingest(env: dict, url: str, tokens: dict[int, str], t_after_ms: int) -> list[float]:
    """POST the upload completing an episode; time from its HTTP 202 to a readable alert row."""
    import requests

    session = requests.Session()

    def post(token: str, batch_id: str, samples: list[dict]) -> None:
        r = session.post(url, json={"batch_id": batch_id, "samples": samples},
                         headers={"Authorization": f"Device {token}"}, timeout=30)
        if r.status_code != 202:
            raise RuntimeError(f"ingest answered {r.status_code}: {r.text[:300]}")

    for pid, token in tokens.items():  # the episode itself, not yet final (the lateness holds it)
        post(token, f"lat-a-{pid}", [{"metric": "heart_rate", "time": t_after_ms + m * 60_000, "value": 132.0}
                                     for m in range(15)])
    time.sleep(3)
    poller, seen, done = alert_poller(env, list(tokens), t_after_ms)
    poller.start()
    accepted: dict[int, float] = {}
    for pid, token in tokens.items():  # the sample that moves the watermark past it
        post(token, f"lat-b-{pid}", [{"metric": "heart_rate", "time": t_after_ms + 26 * 60_000, "value": 70.0}])
        accepted[pid] = time.perf_counter()  # the 202 is in hand
        time.sleep(0.05)
    poller.join(120)
    done.set()
    return [seen[pid] - accepted[pid] for pid in tokens if pid in seen]


def latency(env: dict, patients: list[int], t_after_ms: int) -> list[float]:
    """Send one completing upload per patient; time from broker ack to a readable alert row."""
    from lib import kafka
    from streams.replay import upload_message

    p = kafka.producer()
    # First the episode itself, not yet final (the event-time lateness holds it back)...
    for pid in patients:
        run = [{"metric": "heart_rate", "time": t_after_ms + m * 60_000, "value": 132.0} for m in range(15)]
        p.send(env["KAFKA_TOPIC_SAMPLES"], key=kafka.patient_key(pid),
               value=upload_message(pid, f"lat-a-{pid}", run))
    p.flush()
    time.sleep(3)
    poller, seen, done = alert_poller(env, patients, t_after_ms)
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
    ap.add_argument("--load-fraction", type=float, default=0.25,
                    help="load kept on the worker while alert latency from ingest is measured, "
                         "as a fraction of its measured rate")
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
            n_lat = min(args.latency_patients, args.patients // 2)
            lat = latency(env, list(range(1, n_lat + 1)), t_after)
            # under load: the API takes the completing uploads while the worker is kept busy
            from care.models import Device, Patient

            tokens = {pid: Device.issue(Patient.objects.get(pk=pid), "bench watch")[1]
                      for pid in range(n_lat + 1, 2 * n_lat + 1)}
            from django.db import connections

            connections.close_all()
            port = free_port()
            api = spawn([sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind",
                         f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread",
                         "--threads", "4"], env, log_dir / "api.log")
            stop_load = threading.Event()
            try:
                from config.services import wait_port

                wait_port("127.0.0.1", port, 60, "the API")
                load_rate = max(args.load_fraction * worker_rate, 1.0)
                # the load continues the other patients' days where they stopped (a jump in
                # event time would turn into a storm of wear-gap alerts for the sink)
                feeder = load_feeder(env, range(2 * n_lat + 1, args.patients + 1), args.days,
                                     args.days, args.seed, load_rate, stop_load)
                time.sleep(5)  # the load is flowing
                lat_ingest = latency_from_ingest(env, f"http://127.0.0.1:{port}/api/v1/ingest/batches",
                                                 tokens, t_after)
                stop_load.set()
                feeder.join(30)
            finally:
                stop_load.set()
                stop(api)
            out.update(load_samples_per_s=round(load_rate))
        finally:
            stop(worker, sink)
        out.update(
            worker_samples_per_s=round(worker_rate),
            pure_samples_per_s=round(pure),
            ratio=round(worker_rate / pure, 3),
            alert_latency_p50_s=round(percentile(lat, 50), 3),
            alert_latency_p99_s=round(percentile(lat, 99), 3),
            alerts_measured=len(lat),
            alert_latency_from_ingest_p50_s=round(percentile(lat_ingest, 50), 3),
            alert_latency_from_ingest_p99_s=round(percentile(lat_ingest, 99), 3),
            alerts_measured_from_ingest=len(lat_ingest),
        )
    state_bytes, rss_bytes, state_max, state_raw = state_size(args.state_patients, args.seed)
    out.update(state_bytes_per_patient=round(state_bytes), state_bytes_per_patient_max=state_max,
               state_pickle_bytes_per_patient=round(state_raw),
               state_rss_bytes_per_patient=round(rss_bytes), state_patients=args.state_patients)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>28}: {v}")
    return out


if __name__ == "__main__":
    main()
