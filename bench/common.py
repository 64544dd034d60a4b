"""Shared pieces of the benchmarks: a private environment (broker, database) and RSS sampling."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg

from config import services

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    from config.services import free_port as below_the_ephemeral_range

    return below_the_ephemeral_range()


@contextmanager
def private_servers(log_dir: Path):
    """The PostgreSQL named by $BENCH_PG_URL (a server URL without a database) and the
    Redis of $REDIS_URL when set, else private ones started for this run. Yields the
    PostgreSQL base URL and the variables to export; stops what it started."""
    environ = {"DATABASE_URL": os.environ.get("BENCH_PG_URL", ""),
               "REDIS_URL": os.environ.get("REDIS_URL", "")}
    started = services.PrivateServices.start(environ, log_dir, database_name="postgres")
    try:
        base = os.environ.get("BENCH_PG_URL") or started.env["DATABASE_URL"].rsplit("/", 1)[0]
        yield base.rstrip("/"), {k: v for k, v in started.env.items() if k != "DATABASE_URL"}
    finally:
        started.stop()


@contextmanager
def bench_environment(db_name: str, log_dir: Path, brokers: int = 1):
    """Apache Kafka (its log in ``log_dir``), private PostgreSQL and Redis (see ``private_servers``) and a fresh
    database, migrated. Yields the environment for subprocesses; tears everything down.
    ``brokers=3``: a 3-node cluster (replication factor 3, min ISR 2) instead of one node."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with private_servers(log_dir) as (base, server_env):
        yield from _bench_environment(db_name, log_dir, base, server_env, brokers)


def _bench_environment(db_name: str, log_dir: Path, base: str, server_env: dict, brokers: int = 1):
    port = free_port()
    kafka_dir = log_dir / f"kafka-{port}"
    if brokers == 1:
        broker = services.start_kafka(port, kafka_dir, log_dir / "broker.log")
        bootstrap = f"127.0.0.1:{port}"
    else:
        # the same JVM options as the single node (not ``lean``): a fair comparison
        cluster = services.start_kafka_cluster(kafka_dir, log_dir, nodes=brokers, heap="512m", lean=False)
        bootstrap = cluster.bootstrap
    env = _migrated_database(base, db_name, server_env, port)
    env.update(KAFKA_BOOTSTRAP_SERVERS=bootstrap, KAFKA_REPLICATION_FACTOR="3" if brokers >= 3 else "1")
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "create_topics"], env=env, cwd=ROOT,
                   check=True, capture_output=True)
    try:
        yield env
    finally:
        if brokers == 1:
            services.stop_process(broker)
        else:
            cluster.stop()
        shutil.rmtree(kafka_dir, ignore_errors=True)
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


def _migrated_database(base: str, db_name: str, server_env: dict, tag: int) -> dict:
    """A fresh database ``db_name`` on the server at ``base``, migrated; returns the
    environment that points a process at it."""
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {db_name}")
    env = dict(os.environ)
    env.update(server_env)
    env.update(
        DATABASE_URL=f"{base}/{db_name}",
        PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="WARNING",
        INGEST_RATE_LIMIT_PER_MIN="10000000", CACHE_KEY_PREFIX=f"bench-{tag}",
    )
    # Production settings (DEBUG off) over plain HTTP on localhost, as `make bench` runs
    # them: a throwaway key unless one is given, or the API refuses to start.
    env.setdefault("SECRET_KEY", secrets.token_hex(32))
    env.setdefault("HTTPS", "0")
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput"], env=env, cwd=ROOT,
                   check=True, capture_output=True)
    return env


@contextmanager
def database_environment(db_name: str, log_dir: Path):
    """Private PostgreSQL and Redis (see ``private_servers``) and a fresh, migrated
    database, without a broker: for benchmarks of jobs that only read and write the
    database. Yields the environment; drops the database and stops what it started."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with private_servers(log_dir) as (base, server_env):
        env = _migrated_database(base, db_name, server_env, free_port())
        try:
            yield env
        finally:
            with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


def spawn(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True)


def stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


class RssSampler:
    """Peak resident memory (MB) of labelled processes and their children, sampled in a thread."""

    def __init__(self, procs: dict[str, int], interval: float = 0.5):
        self.procs = procs
        self.peak: dict[str, float] = dict.fromkeys(procs, 0.0)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for label, pid in self.procs.items():
                try:
                    p = psutil.Process(pid)
                    rss = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
                    self.peak[label] = max(self.peak[label], rss / 2**20)
                except psutil.Error:
                    pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def result(self) -> dict[str, float]:
        return {k: round(v, 1) for k, v in self.peak.items()}


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")
