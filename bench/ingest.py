"""End-to-end ingest throughput against its ceiling, and the sustainable rate, in one run.

    python -m bench.ingest [--seconds 60] [--patients 40] [--clients 12] [--json]

Starts its own Apache Kafka, PostgreSQL and Redis (``bench_environment``), then the API
under gunicorn and ``--sinks`` ingest sinks. Three phases, on the same data (the
simulator's uploads of 500 samples; a client that has sent all of its patients'
uploads sends them again shifted ``--days`` + 1 days back, under new batch ids, so it
never runs out):

* **closed loop** (``--seconds``): every client sends as fast as it is answered.
  ``e2e_samples_per_s`` = stored samples / (last commit - first receipt);
* **open loop** (``--stage-seconds`` each): uploads offered at fixed rates (fractions of
  the closed-loop rate); for each, the commit latency and the backlog left 1 s after the
  load stops. ``sustainable_samples_per_s`` is the highest offered rate whose commit
  latency p99 is at most 1 s with no backlog (``backlog_at_end``: samples accepted but
  not yet committed then, at that rate);
* **COPY ceiling**: the same rows COPYed straight into ``samples``, from as many
  connections (processes) as there are sinks.

Commit latency = from the client's 202 (Kafka acknowledged the upload) to the moment a
poller of this process sees the batch committed in PostgreSQL (so the COPY, the rollups
and the COMMIT are inside it; the poll period, 50 ms, bounds the error).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import orjson

from bench.common import ROOT, RssSampler, bench_environment, free_port, percentile, spawn, stop

BATCH = 500
DAY_MS = 86_400_000
STAGES = (0.3, 0.5, 0.7, 0.85, 1.0)


def make_bodies(patient_index: int, days: int, seed: int) -> list[list[dict]]:
    from ingest.simulator import DAY_MS, iter_uploads, make_profiles, simulate_patient

    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days + 1)
    start_ms = int(start.timestamp() * 1000)
    profile = make_profiles(patient_index, seed)[patient_index - 1]
    frame = simulate_patient(profile, start_ms, days, [], seed)
    return [b for b in iter_uploads(frame, max_samples=BATCH, window_ms=DAY_MS) if len(b) == BATCH]


class Bodies:
    """A client's uploads, endless: round r repeats round 0 shifted r * (days + 1) days
    back under new batch ids."""

    def __init__(self, jobs: list[tuple[int, str]], days: int, seed: int):
        self.base: list[tuple[int, str, int, list[dict]]] = []
        for index, token in jobs:
            for k, samples in enumerate(make_bodies(index, days, seed)):
                self.base.append((index, token, k, samples))
        self.base.sort(key=lambda b: hash((b[0] * 7919 + b[2]) % 104729))  # interleave patients
        self.shift_ms = (days + 1) * DAY_MS
        self.next = 0
        self.lock = threading.Lock()
        self.rounds = 0

    def take(self) -> tuple[str, str, bytes, int]:
        with self.lock:
            n, self.next = self.next, self.next + 1
        r, i = divmod(n, len(self.base))
        self.rounds = max(self.rounds, r)
        index, token, k, samples = self.base[i]
        if r:
            shift = r * self.shift_ms
            samples = [{**s, "time": s["time"] - shift, **({"end": s["end"] - shift} if "end" in s else {})}
                       for s in samples]
        batch_id = f"bench-{index}-{k}-r{r}"
        return batch_id, token, orjson.dumps({"batch_id": batch_id, "samples": samples}), len(samples)


def client_worker(url: str, jobs: list[tuple[int, str]], days: int, seed: int, threads: int,
                  commands: mp.Queue, out: mp.Queue) -> None:
    """One load-generator process. Its bodies are made once; then it runs each command
    ``(start_at, stop_at, rate or None)`` and reports the 202s' (batch id, time, samples)."""
    bodies = Bodies(jobs, days, seed)
    out.put("ready")
    while True:
        command = commands.get()
        if command is None:
            return
        out.put(run_load(url, bodies, threads, *command))


def run_load(url: str, bodies: Bodies, threads: int, start_at: float, stop_at: float,
             rate: float | None) -> dict:
    """``threads`` clients from ``start_at`` to ``stop_at``: as fast as answered (no
    ``rate``), or each upload at its due time for ``rate`` samples/s (open loop)."""
    import requests

    lock = threading.Lock()
    stats: dict = {"accepted": 0, "errors": 0, "acks": [], "offered": 0}
    slot = [0]

    def run() -> None:
        session = requests.Session()
        while time.time() < start_at:
            time.sleep(0.005)
        while True:
            if rate:
                with lock:
                    due = start_at + slot[0] * BATCH / rate
                    slot[0] += 1
                if due >= stop_at:
                    return
                time.sleep(max(0.0, due - time.time()))
            elif time.time() >= stop_at:
                return
            batch_id, token, body, n = bodies.take()
            r = session.post(url, data=body, headers={"Authorization": f"Device {token}",
                                                      "Content-Type": "application/json"}, timeout=60)
            with lock:
                stats["offered"] += n
                if r.status_code == 202:
                    stats["accepted"] += n
                    stats["acks"].append((batch_id, time.time(), n))
                else:
                    stats["errors"] += 1

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    stats["rounds"] = bodies.rounds
    return stats


class CommitPoller:
    """Sees batches committed in PostgreSQL, every 50 ms: batch id -> first time seen."""

    def __init__(self, url: str):
        self.url = url
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        last_id = 0
        with psycopg.connect(self.url, autocommit=True) as conn:
            pending: dict[int, str] = {}
            while not self._stop.is_set():
                # rows are inserted "pending" by the API and marked stored by a sink later
                for rid, bid in conn.execute("SELECT id, batch_id FROM ingest_ingestbatch WHERE id > %s "
                                             "ORDER BY id", (last_id,)):
                    pending[rid] = bid
                    last_id = rid
                if pending:
                    done = conn.execute("SELECT id FROM ingest_ingestbatch WHERE id = ANY(%s) "
                                        "AND stored_at IS NOT NULL", (list(pending),)).fetchall()
                    now = time.time()
                    for (rid,) in done:
                        self.seen.setdefault(pending.pop(rid), now)
                self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _copy_share(url: str, patients: list[int], days: int, seed: int, limit_rows: int,
                barrier, out: mp.Queue) -> None:
    """COPY one share of the rows, as a sink would (one connection), after the barrier."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from ingest import storage
    from ingest.schema import Batch, validate_upload
    from lib import db

    batches: list[Batch] = []
    rows = 0
    for index in patients:
        for k, samples in enumerate(make_bodies(index, days, seed)):
            if rows >= limit_rows:
                break
            b = validate_upload({"batch_id": f"c{k}", "samples": samples}, patient=10_000_000 + index,
                                device=None, max_samples=5000)
            batches.append(b)
            rows += len(b.samples)
    flush = 200
    with db.connect(autocommit=False) as conn:
        lo = min(s["time"] for b in batches for s in b.samples)
        hi = max(s["time"] for b in batches for s in b.samples)
        storage.PartitionKeeper().ensure(conn, lo, hi)
        conn.commit()
        barrier.wait()
        started = time.perf_counter()
        for i in range(0, len(batches), flush):
            with conn.transaction(), conn.cursor() as cur:
                storage.copy_samples(cur, storage.columns_from_batches(batches[i:i + flush]))
        out.put((rows, started, time.perf_counter()))


def copy_ceiling(env: dict, patients: list[int], days: int, seed: int, limit_rows: int, connections: int) -> float:
    """COPY the same rows straight into samples from ``connections`` processes at once,
    without the broker, the API, dedupe or rollups. Returns rows per second."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(connections)
    out: mp.Queue = ctx.Queue()
    shares = [patients[k::connections] for k in range(connections)]
    procs = [ctx.Process(target=_copy_share, args=(env["DATABASE_URL"], share, days, seed,
                                                    limit_rows // connections, barrier, out))
             for share in shares]
    for p in procs:
        p.start()
    results = [out.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    rows = sum(r[0] for r in results)
    return rows / (max(r[2] for r in results) - min(r[1] for r in results))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="closed-loop phase")
    parser.add_argument("--stage-seconds", type=float, default=15, help="each open-loop rate")
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--days", type=int, default=60, help="simulated days of data per patient")
    parser.add_argument("--clients", type=int, default=12, help="concurrent HTTP clients")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--sinks", type=int, default=2, help="sink processes in the consumer group")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--brokers", type=int, default=1, choices=(1, 3),
                        help="3: a 3-node Kafka cluster, replication factor 3, min ISR 2")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    log_dir = ROOT / "var" / "bench"
    say = (lambda *_: None) if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    from config.services import kafka_version

    with bench_environment("bench_ingest", log_dir, brokers=args.brokers) as env:
        os.environ["DATABASE_URL"] = env["DATABASE_URL"]
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        from django.apps import apps

        patient_model = next(m for m in apps.get_models() if m.__name__ == "Patient")
        device_model = next(m for m in apps.get_models() if m.__name__ == "Device")
        tokens = []
        for i in range(1, args.patients + 1):
            patient = patient_model.objects.create(display_name=f"bench {i}")
            tokens.append((i, device_model.issue(patient, "bench watch")[1]))
        from django.db import connections

        connections.close_all()
        port = free_port()
        api = spawn([sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
                     "--workers", str(args.api_workers), "--worker-class", "gthread", "--threads", "8"],
                    env, log_dir / "api.log")
        sinks = [spawn([sys.executable, str(ROOT / "manage.py"), "run_ingest_sink"], env, log_dir / f"sink{k}.log")
                 for k in range(args.sinks)]
        ctx = mp.get_context("fork")
        out: mp.Queue = ctx.Queue()
        commands = [ctx.Queue() for _ in range(args.processes)]
        workers = []
        try:
            from config.services import wait_port

            wait_port("127.0.0.1", port, 60, "the API")
            url = f"http://127.0.0.1:{port}/api/v1/ingest/batches"
            shares = [tokens[k::args.processes] for k in range(args.processes)]
            threads = max(1, args.clients // args.processes)
            workers = [ctx.Process(target=client_worker, args=(url, share, args.days, args.seed, threads, q, out))
                       for share, q in zip(shares, commands, strict=True)]
            for w in workers:
                w.start()
            say("bench: making the simulator's batches")
            for _ in workers:
                assert out.get(timeout=900) == "ready"
            import psycopg

            def phase(seconds: float, rate: float | None) -> dict:
                start_at = time.time() + 2
                stop_at = start_at + seconds
                for q in commands:
                    q.put((start_at, stop_at, rate / args.processes if rate else None))
                results = [out.get(timeout=seconds + 600) for _ in workers]
                acks = [a for r in results for a in r["acks"]]
                time.sleep(1.0)
                with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
                    backlog = conn.execute("SELECT coalesce(sum(n_samples), 0) FROM ingest_ingestbatch "
                                           "WHERE stored_at IS NULL").fetchone()[0]
                    deadline = time.time() + 300
                    while time.time() < deadline and conn.execute(
                            "SELECT count(*) FROM ingest_ingestbatch WHERE stored_at IS NULL").fetchone()[0]:
                        time.sleep(0.2)
                time.sleep(0.2)  # the poller's last look
                lat = [poller.seen[b] - t for b, t, _ in acks if b in poller.seen]
                return {"offered_samples_per_s": round(sum(r["offered"] for r in results) / seconds),
                        "accepted": sum(r["accepted"] for r in results),
                        "errors": sum(r["errors"] for r in results),
                        "commit_latency_p50_s": round(percentile(lat, 50), 3),
                        "commit_latency_p99_s": round(percentile(lat, 99), 3),
                        "unseen": len(acks) - len(lat), "backlog_at_end": int(backlog),
                        "rounds": max(r["rounds"] for r in results)}

            with CommitPoller(env["DATABASE_URL"]) as poller, \
                    RssSampler({"api": api.pid, **{f"sink{k}": p.pid for k, p in enumerate(sinks)}}) as rss:
                say(f"bench: closed loop for {args.seconds:.0f} s")
                closed = phase(args.seconds, None)
                with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
                    stored, first, last = conn.execute(
                        "SELECT sum(n_samples), min(received_at), max(stored_at) FROM ingest_ingestbatch "
                        "WHERE stored_at IS NOT NULL").fetchone()
                e2e = stored / (last - first).total_seconds()
                stages = []
                for fraction in STAGES:
                    rate = e2e * fraction
                    say(f"bench: open loop at {rate:,.0f} samples/s for {args.stage_seconds:.0f} s")
                    stages.append({"target_samples_per_s": round(rate), **phase(args.stage_seconds, rate)})
                with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
                    rows = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
                    accepted_total = conn.execute("SELECT coalesce(sum(n_samples), 0) FROM ingest_ingestbatch "
                                                  "WHERE stored_at IS NOT NULL").fetchone()[0]
        finally:
            for q in commands:
                q.put(None)
            for w in workers:
                w.join(30)
            stop(api, *sinks)
        say("bench: measuring the COPY ceiling on the same rows")
        ceiling = copy_ceiling(env, [i for i, _ in tokens], args.days, args.seed,
                               limit_rows=min(int(stored), 1_500_000), connections=args.sinks)
    good = [s for s in stages if s["commit_latency_p99_s"] <= 1.0 and s["backlog_at_end"] == 0
            and s["errors"] == 0]
    result = {
        "broker": {"name": "Apache Kafka", "version": kafka_version(), "brokers": args.brokers,
                   "replication_factor": 3 if args.brokers == 3 else 1},
        "e2e_samples_per_s": round(e2e),
        "copy_samples_per_s": round(ceiling),
        "copy_connections": args.sinks,
        "ratio": round(e2e / ceiling, 3),
        "commit_latency_p50_s": closed["commit_latency_p50_s"],
        "commit_latency_p99_s": closed["commit_latency_p99_s"],
        "sustainable_samples_per_s": max((s["offered_samples_per_s"] for s in good), default=0),
        "backlog_at_end": (max(good, key=lambda s: s["offered_samples_per_s"])["backlog_at_end"]
                           if good else stages[0]["backlog_at_end"]),
        "stages": stages,
        "rss_mb": rss.result(),
        "samples_accepted": closed["accepted"] + sum(s["accepted"] for s in stages),
        "samples_stored": rows,
        "samples_committed_in_bookkeeping": int(accepted_total),
        "client_errors": closed["errors"] + sum(s["errors"] for s in stages),
        "load_seconds": args.seconds,
        "sink_processes": args.sinks,
        "data_rounds": max([closed["rounds"], *(s["rounds"] for s in stages)]),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
