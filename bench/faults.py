"""A broker dies under load: nothing lost, nothing doubled, alerts as a pure replay.

    python -m bench.faults [--fault leader|controller|pause|scale] [--down-seconds 60] [--json]

Starts a 3-node Apache Kafka cluster (KRaft, replication factor 3, min ISR 2; producers
use acks=all), private PostgreSQL and Redis, then the API under gunicorn, the ingest
sink, the alert sink and the Faust detector worker. One phone per simulated patient
uploads its history in 6-hour batches through ``POST /api/v1/ingest/batches``, in
order, one batch every ``--period`` seconds; a batch answered 503 (or not answered) is
sent again with the same batch id until it gets 202, as a phone would.

Once uploads flow, the broker that leads the most samples.v1 partitions is SIGKILLed,
and restarted ``--down-seconds`` later (``--fault controller``: the active controller
instead; ``--fault pause``: the leader is stopped with SIGSTOP and resumed with SIGCONT). When the phones are done and the pipeline has
settled, it prints:

* ``accepted``: batches answered 202; ``stored``: of those, stored in the database;
  ``lost`` = accepted - stored; ``duplicates``: sample rows beyond the accepted
  batches' samples (a batch stored twice would show here);
* ``alerts_equal_replay``: the alert rows equal what the pure detectors give on the same
  histories (``PatientMonitor`` over each patient's whole frame);
* ``unavailable_seconds``: from the first answer that was not 202 to the last;
* ``commit_latency_p99_s`` (and ``_p50_s``) for the batches accepted from the kill to
  ``--down-seconds`` + 10 s after it: from the API's acceptance (``accepted_at``) to
  the sink's commit (``stored_at``), both database clocks; ``commit_latency_p99_s_all``
  over the whole run;
* ``brokers``, ``replication_factor`` (of samples.v1), ``kafka_version``;
* ``changelog_missing_at_assignment``: whether a worker's group was assigned without
  the state table's changelog (a worker taking over partitions then could not restore
  their state).

``run_failover`` is the scenario; tests/test_cluster_faults.py runs it (with a shorter
outage) against the test database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import requests

from bench.common import ROOT, free_port, percentile, private_servers, spawn, stop
from config import services

START = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW_MS = 6 * 3_600_000
LATENESS_S = 600
FAULTS = ("leader", "controller", "pause", "scale")


@dataclass
class Phone:
    """One patient's phone: its uploads in order; a refused one is re-sent until 202."""

    url: str
    token: str
    patient: int
    bodies: list[dict]
    period_s: float
    retry_s: float = 1.0
    answers: list[tuple[float, float, int]] = field(default_factory=list)  # (sent, answered, status)
    accepted: list[int] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    error: str | None = None

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            raise

    def _run(self) -> None:
        session = requests.Session()
        next_at = time.monotonic()
        for k, body in enumerate(self.bodies):
            while not self.stopping.is_set():
                sent = time.monotonic()
                try:
                    r = session.post(self.url, json=body, headers={"Authorization": f"Device {self.token}"},
                                     timeout=30)
                    status = r.status_code
                except requests.RequestException:
                    status = -1
                self.answers.append((sent, time.monotonic(), status))
                if status == 202:
                    self.accepted.append(k)
                    break
                if status not in (503, -1):
                    raise AssertionError(f"batch {body['batch_id']} answered {status}: {r.text[:300]}")
                time.sleep(self.retry_s)
            next_at += self.period_s
            time.sleep(max(0.0, next_at - time.monotonic()))


def cohort_uploads(patients: int, days: int, seed: int = 11):
    """{cohort patient: [upload samples]} in event-time order, and the cohort."""
    from ingest.simulator import simulate_cohort
    from streams.replay import frame_uploads

    cohort = simulate_cohort(patients, days, start=START, seed=seed)
    return {pid: [[api_sample(s) for s in up]
                  for up in frame_uploads(cohort.frames[pid], window_ms=WINDOW_MS, max_samples=5000)]
            for pid in sorted(cohort.frames)}, cohort


def api_sample(record: dict) -> dict:
    """A normalised samples.v1 record as a phone uploads it (the API normalises it back)."""
    if record["metric"] == "sleep_stage":
        return {k: v for k, v in record.items() if k != "value"}
    if record["metric"] == "activity":
        out = {k: v for k, v in record.items() if k != "value"}
        if record.get("value") is not None:
            out["energy"] = record["value"]
        return out
    return record


def replay_rows(cohort, ids: dict[int, int]) -> dict:
    """The final alert states the pure detectors give on each patient's whole history."""
    from streams.detectors import PatientMonitor, Samples

    out: dict = {}
    for pid, db_id in ids.items():
        mon = PatientMonitor(lateness_s=LATENESS_S)
        for e in mon.update(Samples.from_frame(cohort.frames[pid])):
            key = (db_id, e.detector, e.window_start)
            prev = out.get(key)
            out[key] = (e.severity, max(e.window_end, prev[1] if prev else 0), e.state == "closed", e.seq)
    return out


def db_alert_rows(conn, ids: list[int]) -> dict:
    rows = conn.execute(
        "SELECT patient_id, detector, window_start, severity, window_end, signal_closed, event_seq "
        "FROM alerts_alert WHERE patient_id = ANY(%s)", (ids,)).fetchall()
    return {(p, d, int(ws.timestamp() * 1000)): (sev, int(we.timestamp() * 1000), closed, seq)
            for p, d, ws, sev, we, closed, seq in rows}


def make_devices(env: dict, n: int, tag: str) -> list[tuple[int, str]]:
    """n fresh patients with a device each: [(patient id, raw device token)]."""
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", (
        "from care.models import Device, Patient\n"
        f"for i in range({n}):\n"
        f"    p = Patient.objects.create(display_name='faults {tag} ' + str(i))\n"
        "    print('DEVICE', p.pk, Device.issue(p, 'faults')[1])\n")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return [(int(a), b) for _, a, b in (line.split() for line in done.stdout.splitlines()
                                        if line.startswith("DEVICE "))]


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """{broker id: partitions of ``topic`` it leads}."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="faults-bench")
    try:
        (desc,) = admin.describe_topics([topic])
    finally:
        admin.close()
    out: dict[int, int] = {}
    for p in desc["partitions"]:
        out[p["leader_id"]] = out.get(p["leader_id"], 0) + 1
    return out


def replication_factor(bootstrap: str, topic: str) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="faults-bench")
    try:
        (desc,) = admin.describe_topics([topic])
    finally:
        admin.close()
    return min(len(p["replica_nodes"]) for p in desc["partitions"])


def assigned(worker_log: Path, topic: str) -> bool:
    """Whether a worker's log shows partitions of ``topic`` assigned to it."""
    if not worker_log.exists():
        return False
    return any(f"topic='{topic}'" in line for line in worker_log.read_text(errors="replace").splitlines()
               if "Setting newly assigned partitions" in line)


def worker_messages(worker_log: Path) -> int:
    """The messages a stopped worker says it processed (its last words), 0 if none."""
    import re

    found = re.findall(r"detector worker stopped: (\d+) messages", worker_log.read_text(errors="replace"))
    return int(found[-1]) if found else 0


def run_failover(env: dict, cluster: services.KafkaCluster, db_url: str, log_dir: Path, *,
                 patients: int = 6, days: int = 20, down_s: float = 60.0, period_s: float = 0.25,
                 settle_s: float = 240.0, fault: str = "leader", workers: int = 1, sinks: int = 1) -> dict:
    """The scenario (see the module's docstring); ``env`` names the database, Redis and
    the cluster's topics; returns the measures. ``fault``: ``leader`` (SIGKILL the
    leader of most samples.v1 partitions, restart it after ``down_s``), ``controller``
    (the same for the active controller), ``pause`` (SIGSTOP the leader of most
    partitions for ``down_s``, then SIGCONT: a minority cut off, then back), ``scale``
    (``workers`` detector workers and ``sinks`` ingest sinks share the partitions; one
    more worker joins under load and, ``down_s`` after it got partitions, leaves)."""
    if fault not in FAULTS:
        raise ValueError(f"fault must be one of {FAULTS}, not {fault!r}")
    log_dir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    env = dict(env, KAFKA_BOOTSTRAP_SERVERS=cluster.bootstrap, KAFKA_REPLICATION_FACTOR="3",
               DETECTOR_APP_ID=f"faults-{tag}", DETECTOR_STORE="memory://",
               DETECTOR_DATA_DIR=str(log_dir / "faust"), ALERT_SINK_BATCH_SECONDS="0.1",
               INGEST_RATE_LIMIT_PER_MIN="100000", CACHE_KEY_PREFIX=f"faults-{tag}",
               PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="config.settings")
    topic = env.get("KAFKA_TOPIC_SAMPLES", "samples.v1")
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "create_topics"], env=env, cwd=ROOT,
                   check=True, capture_output=True, timeout=120)
    uploads, cohort = cohort_uploads(patients, days)
    devices = make_devices(env, patients, tag)
    ids = {pid: devices[i][0] for i, pid in enumerate(sorted(uploads))}
    api_port = free_port()
    procs = {
        "api": spawn([sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind",
                      f"127.0.0.1:{api_port}", "--workers", "2", "--worker-class", "gthread",
                      "--threads", "8", "--timeout", "120"], env, log_dir / "api.log"),
        "alert_sink": spawn([sys.executable, str(ROOT / "manage.py"), "run_alert_sink", "--group",
                             f"alert-sink-{tag}"], env, log_dir / "alert_sink.log"),
    }
    for i in range(1, sinks + 1):
        procs[f"ingest_sink{i}"] = spawn([sys.executable, str(ROOT / "manage.py"), "run_ingest_sink", "--group",
                                          f"ingest-sink-{tag}"], env, log_dir / f"ingest_sink{i}.log")

    def start_worker(i: int) -> None:
        procs[f"worker{i}"] = spawn([sys.executable, str(ROOT / "manage.py"), "run_detector_worker"],
                                    # INFO: "Worker ready" and the partitions it got are read from its log
                                    dict(env, DETECTOR_DATA_DIR=str(log_dir / f"faust{i}"), LOG_LEVEL="INFO"),
                                    log_dir / f"worker{i}.log")

    for i in range(1, workers + 1):
        start_worker(i)

    phones: list[Phone] = []

    def alive() -> None:
        for phone in phones:
            if phone.error:
                raise AssertionError(f"a phone failed: {phone.error}")
        for label, proc in procs.items():
            if proc.poll() is not None:
                tail = (log_dir / f"{label}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{label} exited with {proc.returncode}:\n{tail}")

    try:
        services.wait_port("127.0.0.1", api_port, 90, "the API", procs["api"])
        url = f"http://127.0.0.1:{api_port}/api/v1/ingest/batches"
        for i, pid in enumerate(sorted(uploads)):
            bodies = [{"batch_id": f"f{tag}-{pid}-{k}", "samples": s} for k, s in enumerate(uploads[pid])]
            phones.append(Phone(url, devices[i][1], ids[pid], bodies, period_s))
        threads = [threading.Thread(target=p.run, daemon=True) for p in phones]
        began = time.monotonic()
        for t in threads:
            t.start()
        # the fault, once the pipeline runs: every worker ready (a Faust worker that is
        # still starting when a broker dies exits: Faust does not retry its start-up) and
        # a few batches of every phone in
        def ready() -> bool:
            return all("Worker ready" in (log_dir / f"worker{i}.log").read_text(errors="replace")
                       for i in range(1, workers + 1))

        while not ready() or min(len(p.accepted) for p in phones) < 5:
            alive()
            assert time.monotonic() - began < 180, "uploads never flowed"
            time.sleep(0.2)
        lead = leaders(cluster.bootstrap, topic)
        if fault == "scale":
            # a worker joins under load, works for down_s, and leaves (SIGTERM)
            victim = 0
            killed_at, killed_wall = time.monotonic(), time.time()
            start_worker(workers + 1)
            joined_at = None
            while joined_at is None or time.monotonic() - joined_at < down_s:
                alive()
                if joined_at is None and (assigned(log_dir / f"worker{workers + 1}.log", topic)
                                          or time.monotonic() - killed_at > 120):
                    joined_at = time.monotonic()
                time.sleep(0.5)
            stop(procs.pop(f"worker{workers + 1}"))
        elif fault == "controller":
            victim = cluster.active_controller()
        else:
            victim = max(lead, key=lambda b: (lead[b], -b))
        if fault != "scale":
            killed_at = time.monotonic()
            killed_wall = time.time()
            cluster.kill(victim, signal.SIGSTOP if fault == "pause" else signal.SIGKILL)
            while time.monotonic() - killed_at < down_s:
                alive()
                time.sleep(0.5)
            if fault == "pause":
                cluster.kill(victim, signal.SIGCONT)
            else:
                cluster.start(victim)
        restarted_after = time.monotonic() - killed_at
        for t in threads:
            while t.is_alive():
                alive()
                t.join(1)
        uploads_done = time.monotonic()

        accepted = {(p.patient, p.bodies[k]["batch_id"]): len(p.bodies[k]["samples"])
                    for p in phones for k in p.accepted}
        expected_alerts = replay_rows(cohort, ids)
        db_ids = list(ids.values())
        deadline = time.monotonic() + settle_s
        with psycopg.connect(db_url, autocommit=True) as conn:
            while True:
                stored_rows = conn.execute(
                    "SELECT patient_id, batch_id FROM ingest_ingestbatch "
                    "WHERE patient_id = ANY(%s) AND stored_at IS NOT NULL", (db_ids,)).fetchall()
                stored = {tuple(r) for r in stored_rows}
                alerts = db_alert_rows(conn, db_ids)
                if (set(accepted) <= stored and alerts == expected_alerts) or time.monotonic() > deadline:
                    break
                alive()
                time.sleep(1)
            time.sleep(2)  # anything in flight lands before the counts
            sample_rows = conn.execute("SELECT count(*) FROM samples WHERE patient_id = ANY(%s)",
                                       (db_ids,)).fetchone()[0]
            alerts = db_alert_rows(conn, db_ids)
            latencies = conn.execute(
                "SELECT extract(epoch FROM accepted_at), extract(epoch FROM stored_at - accepted_at) "
                "FROM ingest_ingestbatch WHERE patient_id = ANY(%s) AND stored_at IS NOT NULL "
                "AND accepted_at IS NOT NULL", (db_ids,)).fetchall()
        settled_s = time.monotonic() - uploads_done
    finally:
        stop(*procs.values())
        cluster.heal()  # a fault interrupted by a failure leaves no node down for the next run

    refused = [(s, a) for p in phones for s, a, status in p.answers if status != 202]
    window = [float(lat) for at, lat in latencies
              if killed_wall <= float(at) <= killed_wall + down_s + 10]
    every = [float(lat) for _, lat in latencies]
    stored_accepted = len(set(accepted) & stored)
    return {
        "accepted": len(accepted),
        "stored": stored_accepted,
        "lost": len(accepted) - stored_accepted,
        "duplicates": int(sample_rows) - sum(accepted.values()),
        "alerts_equal_replay": alerts == expected_alerts,
        "alert_rows": len(alerts),
        "replay_alert_rows": len(expected_alerts),
        "alerts_differing": sorted(str(k) for k in set(alerts) ^ set(expected_alerts)
                                   | {k for k in alerts if k in expected_alerts
                                      and alerts[k] != expected_alerts[k]})[:10],
        "unavailable_seconds": round(max(a for _, a in refused) - min(s for s, _ in refused), 1)
        if refused else 0.0,
        "refused_answers": len(refused),
        "commit_latency_p50_s": round(percentile(window, 50), 3),
        "commit_latency_p99_s": round(percentile(window, 99), 3),
        "commit_latency_p99_s_all": round(percentile(every, 99), 3),
        "fault": fault,
        "killed_broker": victim,
        "killed_broker_led_partitions": lead.get(victim, 0),
        "workers": workers,
        "ingest_sinks": sinks,
        "joined_worker_assigned": fault == "scale" and assigned(log_dir / f"worker{workers + 1}.log", topic),
        "joined_worker_messages": worker_messages(log_dir / f"worker{workers + 1}.log") if fault == "scale" else 0,
        "changelog_missing_at_assignment": any(
            "Ignoring missing topic" in log.read_text(errors="replace") for log in log_dir.glob("worker*.log")),
        "down_seconds": round(restarted_after, 1),
        "settle_seconds": round(settled_s, 1),
        "brokers": len(cluster.nodes),
        "replication_factor": replication_factor(cluster.bootstrap, topic),
        "kafka_version": services.kafka_version(),
        "patients": patients,
        "days": days,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--down-seconds", type=float, default=60.0)
    parser.add_argument("--patients", type=int, default=6)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--period", type=float, default=0.75, help="seconds between a phone's uploads (the uploads of 30 days last 90 s, over the outage)")
    parser.add_argument("--fault", choices=FAULTS, default="leader",
                        help="leader: SIGKILL the leader of most samples.v1 partitions (2a); controller: the "
                             "active controller (2b); pause: SIGSTOP the leader for --down-seconds (2c); "
                             "scale: a third worker joins two under load and leaves (5)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--sinks", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    log_dir = ROOT / "var" / "log" / f"bench-faults-{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    cluster = services.start_kafka_cluster(log_dir / "kafka", log_dir)
    try:
        with private_servers(log_dir) as (base, server_env):
            with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS bench_faults WITH (FORCE)")
                conn.execute("CREATE DATABASE bench_faults")
            env = dict(os.environ)
            env.update(server_env, DATABASE_URL=f"{base}/bench_faults", LOG_LEVEL="WARNING",
                       KAFKA_BOOTSTRAP_SERVERS=cluster.bootstrap, DJANGO_SETTINGS_MODULE="config.settings")
            subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], env=env, cwd=ROOT,
                           check=True, capture_output=True)
            result = run_failover(env, cluster, f"{base}/bench_faults", log_dir, patients=args.patients,
                                  days=args.days, down_s=args.down_seconds, period_s=args.period,
                                  fault=args.fault, workers=args.workers, sinks=args.sinks)
    finally:
        cluster.stop()
        shutil.rmtree(log_dir / "kafka", ignore_errors=True)
    print(json.dumps(result, indent=None if args.json else 2))
    return result


if __name__ == "__main__":
    main()
