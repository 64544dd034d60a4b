"""Outages as an operator would try them: PostgreSQL, Redis and Kafka each stopped for
30 s under a steady upload (10-sample batches every 0.2 s), then started again on the
same port and data. Each on its own private server started here (config.services),
behind the API under gunicorn and one ingest sink, neither of them restarted.

Required: no answer is a 500; while PostgreSQL or Kafka is down uploads are answered
503 with Retry-After; Redis down does not stop ingest (the rate limiter fails open);
afterwards uploads are accepted again, and every sample of every accepted upload (a
503-refused one is retried with the same batch id, as a phone would) is stored exactly
once. About 4 minutes for the three.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import requests

from config import services
from ingest.schema import now_ms
from tests.conftest import ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

OUTAGE_S = 30.0
RECOVERY_S = 10.0
PERIOD_S = 0.2
SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "CELERY_BROKER_URL",
                "CELERY_RESULT_BACKEND", "KAFKA_TOPIC_SAMPLES", "KAFKA_TOPIC_ALERTS")


@dataclass
class Services:
    """The private servers, the API and the sink of this module."""

    folder: Path
    ports: dict[str, int]
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports['postgres']}/outage"

    def start(self, name: str) -> None:
        logs = self.folder / "log"
        if name == "postgres":
            # durable: an immediate stop must not lose a committed transaction (with
            # synchronous_commit off the sink's last commits would vanish after Kafka
            # offsets were committed for them)
            self.procs[name] = services.start_postgres(self.ports["postgres"], self.folder / "pgdata",
                                                       logs / "postgres.log", durable=True)
        elif name == "redis":
            self.procs[name] = services.start_redis(self.ports["redis"], self.folder / "redis", logs / "redis.log")
        elif name == "kafka":
            self.procs[name] = services.start_kafka(self.ports["kafka"], self.folder / "kafka", logs / "kafka.log",
                                                    controller_port=self.ports["controller"])
        else:
            raise ValueError(name)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        if name == "postgres":  # "immediate" shutdown, as pg_ctl -m immediate sends
            os.killpg(proc.pid, signal.SIGQUIT)
            proc.wait(30)
        else:
            services.stop_process(proc)

    def spawn(self, label: str, argv: list[str]) -> None:
        log = open(self.folder / "log" / f"{label}.log", "ab")  # noqa: SIM115 - the child's
        self.procs[label] = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def alive(self) -> None:
        for label in ("api", "sink"):
            code = self.procs[label].poll()
            assert code is None, f"{label} exited with {code}: " + (
                self.folder / "log" / f"{label}.log").read_text(errors="replace")[-3000:]

    def device(self, name: str) -> tuple[int, str]:
        """A fresh patient with a device; returns (patient id, raw token)."""
        out = self.manage("shell", "-c", (
            "from django.apps import apps\n"
            "P = next(m for m in apps.get_models() if m.__name__ == 'Patient')\n"
            "D = next(m for m in apps.get_models() if m.__name__ == 'Device')\n"
            f"p = P.objects.create(display_name='outage {name}')\n"
            "print(p.pk, D.issue(p, 'outage test')[1])\n")).split()
        return int(out[-2]), out[-1]


@pytest.fixture(scope="module")
def stack():
    folder = services.world_reachable_tempdir("healthstream-outage-")
    (folder / "log").mkdir()
    ports = {k: free_port() for k in ("postgres", "redis", "kafka", "controller", "api")}
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    s = Services(folder, ports, env)
    env.update(DATABASE_URL=s.db_url, REDIS_URL=f"redis://127.0.0.1:{ports['redis']}/0",
               KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{ports['kafka']}", HEALTHSTREAM_VAR_DIR=str(folder / "var"),
               CACHE_KEY_PREFIX=f"outage-{ports['api']}", PYTHONUNBUFFERED="1",
               DJANGO_SETTINGS_MODULE="config.settings")
    env["CELERY_BROKER_URL"] = env["CELERY_RESULT_BACKEND"] = env["REDIS_URL"]
    try:
        for name in ("postgres", "redis", "kafka"):
            s.start(name)
        services.create_database(f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres", "outage")
        s.manage("migrate", "--noinput")
        s.manage("create_topics")
        s.spawn("api", [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind",
                        f"127.0.0.1:{ports['api']}", "--workers", "2", "--worker-class", "gthread",
                        "--threads", "16", "--timeout", "120"])
        s.spawn("sink", [sys.executable, str(ROOT / "manage.py"), "run_ingest_sink"])
        services.wait_port("127.0.0.1", ports["api"], 60, "the API", s.procs["api"])
        deadline = time.monotonic() + 120
        while requests.get(f"http://127.0.0.1:{ports['api']}/healthz", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the API never became healthy"
            time.sleep(1)
        yield s
    finally:
        for label in ("sink", "api", "kafka", "redis", "postgres"):
            if label in s.procs:
                services.stop_process(s.procs.pop(label))
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


class Uploader:
    """A phone pushing a 10-sample batch every 0.2 s; refused batches are kept to retry."""

    def __init__(self, url: str, token: str, name: str):
        self.url, self.token, self.name = url, token, name
        self.answers: list[tuple[float, int, str | None]] = []  # (time sent, status, Retry-After)
        self.accepted: set[int] = set()
        self.refused: set[int] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pool = ThreadPoolExecutor(48)
        self.start_ms = now_ms() - 3_600_000
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def body(self, k: int) -> dict:
        return {"batch_id": f"{self.name}-{k}", "samples": [
            {"metric": "heart_rate", "time": self.start_ms + (k * 10 + i) * 100, "value": 60.0 + i}
            for i in range(10)]}

    def post(self, k: int) -> int:
        sent = time.monotonic()
        try:
            r = requests.post(self.url, json=self.body(k), headers={"Authorization": f"Device {self.token}"},
                              timeout=60)
            status, retry = r.status_code, r.headers.get("Retry-After")
        except requests.RequestException:
            status, retry = -1, None
        with self.lock:
            self.answers.append((sent, status, retry))
            if status == 202:
                self.accepted.add(k)
                self.refused.discard(k)
            else:
                self.refused.add(k)
        return status

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self.stopping.is_set():
            self.pool.submit(self.post, self.sent)
            self.sent += 1
            next_at += PERIOD_S
            time.sleep(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.pool.shutdown(wait=True)

    def retry_refused(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.refused and time.monotonic() < deadline:
            for k in sorted(self.refused):
                self.post(k)
            time.sleep(1)
        assert not self.refused, f"still refused after the outage: {sorted(self.refused)[:10]}"

    def statuses(self, since: float = 0.0) -> dict[int, int]:
        out: dict[int, int] = {}
        for t, status, _ in self.answers:
            if t >= since:
                out[status] = out.get(status, 0) + 1
        return out


def run_outage(stack: Services, service: str) -> Uploader:
    patient, token = stack.device(service)
    up = Uploader(f"http://127.0.0.1:{stack.ports['api']}/api/v1/ingest/batches", token, f"out-{service}")
    up.start()
    try:
        deadline = time.monotonic() + 60
        while len(up.answers) < 25 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert set(up.statuses()) == {202}, f"before the outage: {up.statuses()}"
        stack.stop(service)
        down_at = time.monotonic()
        while time.monotonic() - down_at < OUTAGE_S:
            stack.alive()
            time.sleep(1)
        stack.start(service)
        back_at = time.monotonic()
        time.sleep(RECOVERY_S + 10)
        stack.alive()
    finally:
        up.stop()
    # uploads sent from RECOVERY_S after the restart on: the API has recovered by itself
    after = up.statuses(since=back_at + RECOVERY_S)
    first_ok = min((t for t, status, _ in up.answers if t >= back_at and status == 202), default=None)
    print(f"{service}: first upload accepted {first_ok - back_at:.1f} s after the restart"
          if first_ok else f"{service}: nothing accepted after the restart")
    api_log = (stack.folder / "log" / "api.log").read_text(errors="replace").splitlines()
    assert after and set(after) == {202}, (f"{service}: uploads sent {RECOVERY_S} s after the restart: {after}\n"
                                           + "\n".join([line for line in api_log if "WARNING" in line][-15:]))
    all_answers = up.statuses()
    assert 500 not in all_answers, f"{service}: {all_answers}"
    assert all(retry for _, status, retry in up.answers if status == 503), "a 503 without Retry-After"
    up.retry_refused(120)

    expected = 10 * len(up.accepted)
    deadline = time.monotonic() + 180
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            rows, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT time) FROM samples WHERE patient_id = %s", (patient,)).fetchone()
            if rows >= expected:
                break
            stack.alive()
            time.sleep(1)
    assert (rows, distinct) == (expected, expected), (
        f"{service}: {len(up.accepted)} batches accepted ({expected} samples), stored {rows} rows, "
        f"{distinct} distinct; answers {all_answers}")
    print(f"{service}: answers {all_answers}; {len(up.accepted)} batches, {expected} samples stored once")
    return up


def test_postgresql_down_for_30_s_answers_503_with_retry_after_and_every_accepted_sample_is_stored_once(stack):
    up = run_outage(stack, "postgres")
    assert up.statuses().get(503, 0) > 0, "the outage was not seen: no 503"


def test_redis_down_for_30_s_does_not_stop_ingest_and_every_sample_is_stored_once(stack):
    up = run_outage(stack, "redis")
    assert set(up.statuses()) == {202}, up.statuses()


def test_kafka_down_for_30_s_answers_503_with_retry_after_and_every_accepted_sample_is_stored_once(stack):
    up = run_outage(stack, "kafka")
    assert up.statuses().get(503, 0) > 0, "the outage was not seen: no 503"
