"""The deployment files (issue 15): no Docker engine here, so what can be checked is: the
compose file names every part with its scale, every role and command it runs exists, every
setting it passes is read by the code, the Dockerfile copies what exists, and the image's
entry point runs CI's deployment check for real."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
ENTRYPOINT = (ROOT / "deploy" / "entrypoint.sh").read_text()


def _roles(script: str) -> dict[str, str]:
    """The entry point's case arms: role -> the command it runs (up to ``;;``)."""
    roles: dict[str, str] = {}
    current = None
    for line in script.splitlines():
        m = re.match(r"\s+([a-z-]+)\)\s*(.*)", line)
        if m:
            current, rest = m.group(1), m.group(2)
            roles[current] = rest
        elif current is not None:
            roles[current] += " " + line.strip()
        if current is not None and ";;" in roles[current]:
            current = None
    return roles


ROLES = _roles(ENTRYPOINT)
APP_SERVICES = {name: s for name, s in COMPOSE["services"].items() if s.get("image") == "healthstream:latest"}


def _read_settings() -> set[str]:
    """Names of the environment variables the code reads."""
    names: set[str] = set()
    for path in [ROOT / "config" / "settings.py", *sorted((ROOT / "lib").glob("*.py")), ROOT / "deploy" / "entrypoint.sh"]:
        text = path.read_text()
        names |= set(re.findall(r'env_\w+\("([A-Z0-9_]+)"', text))
        names |= set(re.findall(r'os\.environ(?:\.get)?\(\s*"([A-Z0-9_]+)"', text))
        names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", text))
    names |= {n[:-5] for n in names if n.endswith("_FILE")} | {f"{n}_FILE" for n in names}
    return names


def test_the_compose_file_has_every_part_at_its_scale():
    services = COMPOSE["services"]
    assert {"kafka1", "kafka2", "kafka3", "timescaledb", "redis", "proxy"} <= set(services)
    roles = {name: s["command"][0] for name, s in APP_SERVICES.items()}
    assert set(roles.values()) >= {"migrate", "api", "ingest-sink", "alert-sink", "detectors", "celery-worker",
                                   "celery-beat"}
    scale = {name: s.get("deploy", {}).get("replicas", 1) for name, s in APP_SERVICES.items()}
    assert scale["api"] == 2 and scale["detectors"] == 2
    voters = services["kafka1"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters.count("@kafka") == 3 and services["kafka1"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["kafka2"]["environment"]["KAFKA_NODE_ID"] == 2
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:")


def test_every_celery_queue_has_a_compose_worker_and_bulk_jobs_do_not_share_the_alerts_queue():
    from django.conf import settings

    served = {q for s in APP_SERVICES.values() if s["command"][0] == "celery-worker"
              for q in s["environment"]["CELERY_QUEUES"].split(",")}
    routed = {r["queue"] for r in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    assert routed == served == {"celery", "bulk"}
    from config.celery import app

    route = app.amqp.router.route
    for task in ("forecasting.tasks.retrain_forecasters", "forecasting.tasks.bootstrap_forecasts",
                 "ingest.tasks.run_import_job", "coaching.tasks.daily"):
        assert route({}, task)["queue"].name == "bulk", task
    for task in ("alerts.notify.tasks.sweep", "alerts.notify.tasks.deliver", "coaching.tasks.on_alert_opened"):
        assert route({}, task)["queue"].name == "celery", task


def test_every_role_the_compose_file_runs_exists_and_runs_a_command_that_exists():
    commands = get_commands()
    for name, service in APP_SERVICES.items():
        role = service["command"][0]
        assert role in ROLES, f"{name}: role {role!r} is not in deploy/entrypoint.sh"
    for role, line in ROLES.items():
        m = re.search(r"manage\.py (\w+)", line)
        if m:
            assert m.group(1) in commands, f"role {role}: manage.py {m.group(1)} does not exist"
    assert "config.wsgi:application" in ROLES["api"] and (ROOT / "config" / "wsgi.py").exists()
    assert "-A config" in ROLES["celery-worker"] and (ROOT / "config" / "celery.py").exists()


def test_every_setting_the_compose_file_passes_is_read_by_the_code():
    read = _read_settings()
    for name, service in APP_SERVICES.items():
        for key in service.get("environment", {}):
            assert key in read, f"{name}: {key} is set in deploy/compose.yaml but nothing reads it"


def test_the_dockerfile_copies_what_exists():
    text = (ROOT / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (\S+)", text, re.M):
        assert (ROOT / src).exists(), src
    assert 'ENTRYPOINT ["healthstream"]' in text and "deploy/entrypoint.sh /usr/local/bin/healthstream" in text
    assert "USER healthstream" in text


def test_the_images_entry_point_runs_the_deployment_check_ci_runs():
    makefile = (ROOT / "Makefile").read_text()
    assert "manage.py check --deploy --fail-level WARNING" in makefile
    assert "manage.py check --deploy --fail-level WARNING" in ROLES["check"]
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "HTTPS", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(DEBUG="0", ALLOWED_HOSTS="health.example.org", SECRET_KEY=secrets.token_urlsafe(48),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    done = subprocess.run(["sh", str(ROOT / "deploy" / "entrypoint.sh"), "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout
    bad = subprocess.run(["sh", str(ROOT / "deploy" / "entrypoint.sh"), "nonsense"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 64 and "unknown role" in bad.stderr
