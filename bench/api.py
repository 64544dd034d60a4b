"""API benchmark: ``python -m bench.api [--json]``.

Loads 100 patients x 90 days of minute heart rate (12.96 million rows; COPY straight
into ``samples``, rollups folded in with ingest/storage.py's own ``update_rollups``),
hourly steps, nightly sleep stages and 20 alerts a patient into a private database
(kept between runs: ``--reload`` rebuilds it), starts a real gunicorn, and drives it
with 50 concurrent keep-alive clients (aiohttp, one process):

* the patient's 30-day chart, ``GET /api/v1/patients/{id}/chart?days=30`` (patient tokens);
* the alert queue, ``GET /api/v1/alerts?limit=50`` (clinician tokens);
* in the same run, the chart's database queries alone (psycopg, no HTTP, no Django).

Prints ``chart_p50_ms chart_p99_ms chart_rps queue_p99_ms queue_rps db_only_p99_ms``
(and more: the one-client service times, the load average) as one JSON object with
``--json``. Client and server share this machine's cores: the figures are for the whole
system under test, clients included, and for whatever else the machine was running
(``load_average_1m`` says how busy it was).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
DB = "healthstream_bench_api"
DAY_MS = 86_400_000


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values), q))


# ------------------------------------------------------------------- loading

def _setup_django(db_url: str) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def ensure_database(base: str, reload: bool) -> str:
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone()
        if exists and reload:
            conn.execute(f"DROP DATABASE {DB} WITH (FORCE)")
            exists = None
        if not exists:
            conn.execute(f"CREATE DATABASE {DB}")
    return f"{base}/{DB}"


def _copy_heart_rate(cur, patient_id: int, start_ms: int, minutes: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """COPY ``minutes`` of minute heart rate as text built with numpy (no per-row Python)."""
    t = start_ms + np.arange(minutes, dtype=np.int64) * 60_000
    minute_of_day = (t // 60_000) % 1440
    resting = 52 + patient_id % 20 + rng.normal(0, 1.5, minutes // 1440 + 1)[np.arange(minutes) // 1440]
    awake = (minute_of_day >= 6 * 60) & (minute_of_day < 23 * 60)
    hr = resting + np.where(awake, 18 + 8 * np.sin(minute_of_day / 1440 * 2 * np.pi), 2.0)
    hr = np.round(hr + rng.normal(0, 3, minutes), 1)
    stamps = np.datetime_as_string(t.astype("datetime64[ms]"), unit="s")
    lines = np.char.add(np.char.add(f"{patient_id}\t\\N\t1\t", stamps),
                        np.char.add("+00\t\\N\t", np.char.add(hr.astype(str), "\t\\N\t\\N\n")))
    with cur.copy("COPY samples (patient_id, device_id, metric, time, end_time, value, label, level) FROM STDIN") as cp:
        for i in range(0, len(lines), 20_000):
            cp.write("".join(lines[i:i + 20_000].tolist()))
    return t, hr


def load(db_url: str, patients: int, days: int) -> dict:
    _setup_django(db_url)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from alerts.models import Alert
    from api.auth import issue
    from care.models import Assignment, CareTeam, Clinician, Consent, Patient, TeamMembership
    from ingest import storage
    from lib import db

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_meta (k text PRIMARY KEY, v jsonb)")
        cur.execute("SELECT v FROM bench_meta WHERE k = 'api'")
        row = cur.fetchone()
    if row:
        meta = row[0] if isinstance(row[0], dict) else json.loads(row[0])
        if meta.get("patients") == patients and meta.get("days") == days:
            log(f"data already loaded ({patients} patients x {days} days, {meta['rows']:,} rows)")
            return meta
        raise SystemExit("the bench database holds other data: run with --reload")
    User = get_user_model()
    team = CareTeam.objects.create(name="Bench team")
    clinicians = []
    for i in range(10):
        user = User.objects.create(username=f"bench-clinician-{i}")
        c = Clinician.objects.create(user=user, display_name=f"Bench clinician {i}")
        TeamMembership.objects.create(team=team, clinician=c)
        clinicians.append(issue(user)[1])
    now = datetime.now(UTC)
    end_ms = int(datetime(now.year, now.month, now.day, tzinfo=UTC).timestamp() * 1000) + DAY_MS
    start_ms = end_ms - days * DAY_MS
    patient_tokens, patient_ids = [], []
    rows = 0
    keeper = storage.PartitionKeeper()
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    raw = db.connect(autocommit=True)  # the COPY path: its own connection, as the sink has
    for k in range(patients):
        user = User.objects.create(username=f"bench-patient-{k}")
        p = Patient.objects.create(user=user, display_name=f"Bench patient {k}")
        Assignment.objects.create(team=team, patient=p)
        Consent.objects.create(team=team, patient=p)
        patient_tokens.append(issue(user)[1])
        patient_ids.append(p.pk)
        minutes = days * 1440
        keeper.ensure(raw, start_ms, end_ms - 1)
        with raw.transaction(), raw.cursor() as cur:
            t, hr = _copy_heart_rate(cur, p.pk, start_ms, minutes, rng)
            n = len(t)
            storage.update_rollups(cur, storage.Columns(
                np.full(n, p.pk, dtype=np.int64), [None] * n, np.full(n, 1, dtype=np.int16), t,
                [None] * n, hr.tolist(), [None] * n, [None] * n))
            # hourly steps and nightly sleep stages go through the sink's own writer
            ht = start_ms + np.arange(days * 24, dtype=np.int64) * 3_600_000
            hour = (ht // 3_600_000) % 24
            steps = np.where((hour >= 7) & (hour < 22), rng.poisson(450, len(ht)), 0).astype(float)
            nights = start_ms + np.arange(days, dtype=np.int64) * DAY_MS - 2 * 3_600_000  # 22:00
            st, en, lab = [], [], []
            for night in nights.tolist():
                cursor = night + 30 * 60_000
                for stage, mins in (("light", 120), ("deep", 70), ("rem", 60), ("light", 110),
                                    ("awake", 10), ("rem", 40)):
                    mins = int(mins * rng.uniform(0.8, 1.1))
                    st.append(cursor)
                    en.append(cursor + mins * 60_000)
                    lab.append(stage)
                    cursor += mins * 60_000
            keeper.ensure(raw, min(int(nights.min()), start_ms), end_ms)
            extra = storage.Columns(
                np.full(len(ht) + len(st), p.pk, dtype=np.int64), [None] * (len(ht) + len(st)),
                np.r_[np.full(len(ht), 2), np.full(len(st), 3)].astype(np.int16),
                np.r_[ht, np.asarray(st, dtype=np.int64)],
                (ht + 3_600_000).tolist() + en, steps.tolist() + [None] * len(st),
                [None] * len(ht) + lab, [None] * (len(ht) + len(st)))
            storage.copy_samples(cur, extra)
            storage.update_rollups(cur, extra)
        rows += n + len(extra)
        alerts = []
        for _ in range(20):
            ws = timezone.now() - timedelta(hours=rng.uniform(1, 24 * 30))
            alerts.append(Alert(patient=p, detector=random.choice(
                ["hr_high_at_rest", "nightsignal_rhr", "cusum_rhr", "wear_gap", "sleep_debt"]),
                severity=random.choice(["red", "yellow", "yellow", "info"]), window_start=ws,
                window_end=ws + timedelta(minutes=30), status=random.choice(
                    ["open", "open", "acknowledged", "snoozed", "resolved"]),
                evidence={"value": 120.0, "baseline": 62.0, "threshold": 110.0}))
        Alert.objects.bulk_create(alerts, ignore_conflicts=True)
        if k % 10 == 9:
            log(f"  loaded {k + 1}/{patients} patients, {rows:,} rows, {time.perf_counter() - started:.0f} s")
    raw.execute("ANALYZE")
    raw.close()
    meta = {"patients": patients, "days": days, "rows": rows, "patient_ids": patient_ids,
            "patient_tokens": patient_tokens, "clinician_tokens": clinicians,
            "load_s": round(time.perf_counter() - started, 1)}
    with connection.cursor() as cur:
        cur.execute("INSERT INTO bench_meta VALUES ('api', %s)", [json.dumps(meta)])
    return meta


# ------------------------------------------------------------------- driving

async def _drive(url_of, token_of, clients: int, duration: float, warmup: float) -> dict:
    import aiohttp

    lat: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + warmup + duration
    measure_from = time.perf_counter() + warmup
    connector = aiohttp.TCPConnector(limit=clients, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker(i: int):
            nonlocal errors
            rnd = random.Random(i)
            while time.perf_counter() < stop_at:
                k = rnd.randrange(1 << 30)
                t0 = time.perf_counter()
                try:
                    async with session.get(url_of(k), headers={"Authorization": f"Token {token_of(k)}"}) as r:
                        await r.read()
                        code = r.status
                except aiohttp.ClientError:
                    code = -1
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    statuses[code] = statuses.get(code, 0) + 1
                    if code == 200:
                        lat.append((t1 - t0) * 1000)
                    else:
                        errors += 1
        await asyncio.gather(*(worker(i) for i in range(clients)))
    return {"latencies": lat, "errors": errors, "statuses": statuses, "duration": duration}


def summarise(run: dict) -> dict:
    lat = run["latencies"]
    return {"p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1),
            "rps": round(len(lat) / run["duration"], 1), "ok": len(lat), "errors": run["errors"],
            "statuses": {str(k): v for k, v in run["statuses"].items()}}


def db_only(db_url: str, meta: dict, seconds: float, threads: int) -> dict:
    """The chart's queries (the ones api/chart.py runs), straight over psycopg."""
    from alerts.models import Alert
    from coaching.features import HR, STEPS

    now = datetime.now(UTC)
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(days=30)
    history = start - timedelta(days=29)
    queries = [
        ("""SELECT extract(epoch FROM bucket)::bigint, total / n, vmin, vmax, n FROM samples_1h
            WHERE patient_id = %s AND metric = %s AND bucket >= %s AND bucket < %s AND n > 0
            ORDER BY bucket""", lambda p: (p, HR, history, end)),
        ("""SELECT extract(epoch FROM bucket)::bigint, total FROM samples_1d
            WHERE patient_id = %s AND metric = %s AND bucket >= %s AND bucket < %s ORDER BY bucket""",
         lambda p: (p, STEPS, start, end)),
        ("""SELECT extract(epoch FROM bucket)::bigint, sum(minutes) FILTER (WHERE stage <> 'awake'),
                   sum(minutes) FILTER (WHERE stage = 'deep'), sum(minutes) FILTER (WHERE stage = 'rem'),
                   sum(minutes) FILTER (WHERE stage = 'awake')
            FROM sleep_nightly WHERE patient_id = %s AND bucket >= %s AND bucket < %s GROUP BY 1 ORDER BY 1""",
         lambda p: (p, start, end)),
        (f"""SELECT id, detector, severity, status, extract(epoch FROM window_start)::bigint,
                   extract(epoch FROM window_end)::bigint FROM {Alert._meta.db_table}
            WHERE patient_id = %s AND window_end >= %s AND window_start < %s
            ORDER BY window_start DESC LIMIT 200""", lambda p: (p, start, end)),
    ]
    ids = meta["patient_ids"]
    stop_at = time.perf_counter() + seconds

    def worker(i: int) -> list[float]:
        out = []
        rnd = random.Random(i)
        with psycopg.connect(db_url, autocommit=True) as conn:
            while time.perf_counter() < stop_at:
                p = rnd.choice(ids)
                t0 = time.perf_counter()
                for sql, args in queries:
                    conn.execute(sql, args(p)).fetchall()
                out.append((time.perf_counter() - t0) * 1000)
        return out

    with ThreadPoolExecutor(threads) as pool:
        lat = [x for part in pool.map(worker, range(threads)) for x in part]
    return {"p50_ms": round(pct(lat, 50), 2), "p99_ms": round(pct(lat, 99), 2),
            "per_s": round(len(lat) / seconds, 1), "threads": threads}


def start_gunicorn(db_url: str, port: int, workers: int, threads: int) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(DATABASE_URL=db_url, LOG_LEVEL="WARNING", API_RATE_LIMIT_PER_MIN="100000000",
               DB_CONN_MAX_AGE="600", CACHE_KEY_PREFIX=f"bench-api-{port}",
               DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads),
            "--backlog", "2048", "--keep-alive", "30", "--log-level", "warning"]
    log_path = ROOT / "var" / "log" / "bench-api-gunicorn.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=open(log_path, "ab"),  # noqa: SIM115
                            stderr=subprocess.STDOUT, start_new_session=True)
    from config.services import wait_port

    wait_port("127.0.0.1", port, 60, "gunicorn", proc)
    return proc


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "4")))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "2")))
    ap.add_argument("--reload", action="store_true", help="drop and reload the bench database")
    args = ap.parse_args(argv)

    from bench.common import private_servers

    with private_servers(ROOT / "var" / "bench" / "api") as (base, server_env):
        os.environ.update(server_env)
        return _run(args, ensure_database(base, args.reload))


def _run(args: argparse.Namespace, db_url: str) -> dict:
    log(f"loading {args.patients} patients x {args.days} days of minute heart rate into {DB}")
    meta = load(db_url, args.patients, args.days)
    from bench.common import free_port, stop

    port = free_port()
    server = start_gunicorn(db_url, port, args.workers, args.threads)
    base_url = f"http://127.0.0.1:{port}"
    ids, ptok, ctok = meta["patient_ids"], meta["patient_tokens"], meta["clinician_tokens"]
    try:
        log(f"gunicorn: {args.workers} workers x {args.threads} threads; {args.clients} clients")
        chart = asyncio.run(_drive(lambda k: f"{base_url}/api/v1/patients/{ids[k % len(ids)]}/chart?days=30",
                                   lambda k: ptok[k % len(ptok)], args.clients, args.seconds, args.warmup))
        queue = asyncio.run(_drive(lambda k: f"{base_url}/api/v1/alerts?limit=50",
                                   lambda k: ctok[k % len(ctok)], args.clients, args.seconds, args.warmup))
        # One client at a time: the service time of a request, with no queueing.
        chart1 = asyncio.run(_drive(lambda k: f"{base_url}/api/v1/patients/{ids[k % len(ids)]}/chart?days=30",
                                    lambda k: ptok[k % len(ptok)], 1, args.seconds / 4, 1.0))
        queue1 = asyncio.run(_drive(lambda k: f"{base_url}/api/v1/alerts?limit=50",
                                    lambda k: ctok[k % len(ctok)], 1, args.seconds / 4, 1.0))
    finally:
        stop(server)
    db = db_only(db_url, meta, args.seconds / 2, threads=min(args.clients, 16))
    c, q = summarise(chart), summarise(queue)
    c1, q1 = summarise(chart1), summarise(queue1)
    loadavg = os.getloadavg()
    report = {
        "chart_p50_ms": c["p50_ms"], "chart_p99_ms": c["p99_ms"], "chart_rps": c["rps"],
        "queue_p50_ms": q["p50_ms"], "queue_p99_ms": q["p99_ms"], "queue_rps": q["rps"],
        "db_only_p50_ms": db["p50_ms"], "db_only_p99_ms": db["p99_ms"],
        "chart_errors": c["errors"], "queue_errors": q["errors"],
        "chart_1client_p50_ms": c1["p50_ms"], "queue_1client_p50_ms": q1["p50_ms"],
        "load_average_1m": round(loadavg[0], 2),
        "detail": {"chart": c, "queue": q, "db_only": db,
                   "setup": {"patients": meta["patients"], "days": meta["days"], "rows": meta["rows"],
                             "clients": args.clients, "seconds": args.seconds,
                             "gunicorn": f"{args.workers} workers x {args.threads} threads (gthread)",
                             "cpus": os.cpu_count()}},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key in ("chart_p50_ms", "chart_p99_ms", "chart_rps", "queue_p99_ms", "queue_rps", "db_only_p99_ms"):
            print(f"{key:>16}: {report[key]}")
    return report


if __name__ == "__main__":
    main()
