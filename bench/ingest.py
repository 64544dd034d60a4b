"""End-to-end ingest throughput against its ceiling, in one run.

    python -m bench.ingest [--seconds 60] [--patients 40] [--clients 12] [--json]

Starts its own broker (Tansu) and a fresh database on the local PostgreSQL, then the
API under gunicorn and the ingest sink. Clients push HTTP batches of 500 samples of
the simulator's shape for ``--seconds``; the run ends when every accepted batch is
committed. In the same run it measures the ceiling: COPY of the same rows straight
into the same table. Prints one JSON object (``--json``) with e2e_samples_per_s,
copy_samples_per_s, ratio, commit_latency_p50_s, commit_latency_p99_s, rss_mb.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from datetime import UTC, datetime, timedelta

import orjson

from bench.common import ROOT, RssSampler, bench_environment, free_port, percentile, spawn, stop

BATCH = 500


def make_bodies(patient_index: int, days: int, seed: int) -> list[list[dict]]:
    from ingest.simulator import DAY_MS, iter_uploads, make_profiles, simulate_patient

    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days + 1)
    start_ms = int(start.timestamp() * 1000)
    profile = make_profiles(patient_index, seed)[patient_index - 1]
    frame = simulate_patient(profile, start_ms, days, [], seed)
    return [b for b in iter_uploads(frame, max_samples=BATCH, window_ms=DAY_MS) if len(b) == BATCH]


def client_worker(url: str, jobs: list[tuple[int, str]], days: int, seed: int, threads: int,
                  start_at: float, stop_at: float, out: mp.Queue) -> None:
    """One load-generator process: its patients' bodies are made before the clock starts."""
    import threading

    import requests

    queue: list[tuple[str, bytes, int]] = []
    for index, token in jobs:
        for k, samples in enumerate(make_bodies(index, days, seed)):
            body = orjson.dumps({"batch_id": f"bench-{index}-{k}", "samples": samples})
            queue.append((token, body, len(samples)))
    queue.sort(key=lambda q: hash(q[1][:64]))  # interleave patients
    lock = threading.Lock()
    stats = {"accepted": 0, "batches": 0, "errors": 0, "exhausted": False}

    def run() -> None:
        session = requests.Session()
        while time.time() < start_at:
            time.sleep(0.01)
        while time.time() < stop_at:
            with lock:
                if not queue:
                    stats["exhausted"] = True
                    return
                token, body, n = queue.pop()
            r = session.post(url, data=body, headers={"Authorization": f"Device {token}",
                                                      "Content-Type": "application/json"}, timeout=60)
            with lock:
                if r.status_code == 202:
                    stats["accepted"] += n
                    stats["batches"] += 1
                else:
                    stats["errors"] += 1

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put(stats)


def copy_ceiling(env: dict, patients: list[int], days: int, seed: int, limit_rows: int) -> float:
    """COPY the same rows (the simulator's batches) straight into samples, as the sink
    would, without the broker, the API, dedupe or rollups. Returns rows per second."""
    os.environ.update({k: env[k] for k in ("DATABASE_URL",)})
    import django

    django.setup()
    from ingest import storage
    from ingest.schema import Batch, validate_upload
    from lib import db

    batches: list[Batch] = []
    rows = 0
    for index in patients:
        for k, samples in enumerate(make_bodies(index, days, seed)):
            b = validate_upload({"batch_id": f"c{k}", "samples": samples}, patient=10_000_000 + index, device=None,
                                max_samples=5000)
            batches.append(b)
            rows += len(b.samples)
            if rows >= limit_rows:
                break
        if rows >= limit_rows:
            break
    flush = 200
    with db.connect(autocommit=False) as conn:
        lo = min(s["time"] for b in batches for s in b.samples)
        hi = max(s["time"] for b in batches for s in b.samples)
        storage.PartitionKeeper().ensure(conn, lo, hi)
        started = time.perf_counter()
        for i in range(0, len(batches), flush):
            with conn.transaction(), conn.cursor() as cur:
                storage.copy_samples(cur, storage.columns_from_batches(batches[i:i + flush]))
        elapsed = time.perf_counter() - started
    return rows / elapsed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--days", type=int, default=60, help="simulated days of data per patient")
    parser.add_argument("--clients", type=int, default=12, help="concurrent HTTP clients")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--sinks", type=int, default=2, help="sink processes in the consumer group")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    log_dir = ROOT / "var" / "bench"
    say = (lambda *_: None) if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    with bench_environment("bench_ingest", log_dir) as env:
        os.environ["DATABASE_URL"] = env["DATABASE_URL"]
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        from care.models import Device, Patient

        tokens = []
        for i in range(1, args.patients + 1):
            patient = Patient.objects.create(display_name=f"bench {i}")
            tokens.append((i, Device.issue(patient, "bench watch")[1]))
        from django.db import connections

        connections.close_all()
        port = free_port()
        api = spawn([sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
                     "--workers", str(args.api_workers), "--worker-class", "gthread", "--threads", "8"],
                    env, log_dir / "api.log")
        sinks = [spawn([sys.executable, str(ROOT / "manage.py"), "run_ingest_sink"], env, log_dir / f"sink{k}.log")
                 for k in range(args.sinks)]
        try:
            from config.services import wait_port

            wait_port("127.0.0.1", port, 60, "the API")
            say(f"bench: API on {port}; making the simulator's batches and warming up the sink")
            time.sleep(8)  # the sink's consumer group join
            url = f"http://127.0.0.1:{port}/api/v1/ingest/batches"
            out: mp.Queue = mp.Queue()
            start_at = time.time() + 15 + args.patients * args.days / 400  # bodies are made first
            stop_at = start_at + args.seconds
            shares = [tokens[k::args.processes] for k in range(args.processes)]
            workers = [mp.Process(target=client_worker, args=(url, share, args.days, args.seed,
                                                              max(1, args.clients // args.processes),
                                                              start_at, stop_at, out))
                       for share in shares]
            for w in workers:
                w.start()
            with RssSampler({"api": api.pid, **{f"sink{k}": p.pid for k, p in enumerate(sinks)}}) as rss:
                while time.time() < stop_at:
                    time.sleep(5)
                    if time.time() > start_at:
                        say(f"bench: {int(time.time() - start_at)}s of {int(args.seconds)}s")
                results = [out.get() for _ in workers]
                for w in workers:
                    w.join()
                accepted = sum(r["accepted"] for r in results)
                say(f"bench: {accepted:,} samples accepted; waiting for the sink to commit them")
                import psycopg

                deadline = time.time() + 300
                with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
                    while time.time() < deadline:
                        pending = conn.execute("SELECT count(*) FROM ingest_ingestbatch WHERE stored_at IS NULL").fetchone()[0]
                        if pending == 0:
                            break
                        time.sleep(0.5)
                    stored, first, last = conn.execute(
                        "SELECT sum(n_samples), min(received_at), max(stored_at) FROM ingest_ingestbatch "
                        "WHERE stored_at IS NOT NULL").fetchone()
                    latencies = [r[0] for r in conn.execute(
                        "SELECT extract(epoch FROM stored_at - accepted_at)::float8 FROM ingest_ingestbatch "
                        "WHERE stored_at IS NOT NULL AND accepted_at IS NOT NULL")]
                    rows = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
            e2e = stored / (last - first).total_seconds()
        finally:
            stop(api, *sinks)
        say("bench: measuring the COPY ceiling on the same rows")
        ceiling = copy_ceiling(env, [i for i, _ in tokens], args.days, args.seed, limit_rows=min(stored, 1_500_000))
    result = {
        "e2e_samples_per_s": round(e2e),
        "copy_samples_per_s": round(ceiling),
        "ratio": round(e2e / ceiling, 3),
        "commit_latency_p50_s": round(percentile(latencies, 50), 3),
        "commit_latency_p99_s": round(percentile(latencies, 99), 3),
        "rss_mb": rss.result(),
        "samples_accepted": accepted,
        "samples_stored": rows,
        "client_errors": sum(r["errors"] for r in results),
        "load_seconds": args.seconds,
        "sink_processes": args.sinks,
        "clients_ran_out_of_data": any(r["exhausted"] for r in results),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
