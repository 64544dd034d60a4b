"""Finding 8 (issue 15): production settings pass Django's deployment checks, a missing
SECRET_KEY stops a production start, and every answer carries the security headers;
dashboard sessions end after a while without activity."""

from __future__ import annotations

import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

from django.test import Client

from api.middleware import _LAST_ACTIVE

ROOT = Path(__file__).resolve().parents[2]


def _production_env(**extra) -> dict:
    # the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE is no production setting (async.E001)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEBUG", "SECRET_KEY", "HTTPS", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(DEBUG="0", ALLOWED_HOSTS="health.example.org", **extra)
    return env


def test_check_deploy_passes_with_production_settings():
    key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(50))
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=_production_env(SECRET_KEY=key), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_a_production_start_without_a_secret_key_fails_saying_so():
    serve = subprocess.run([sys.executable, "-c", "import config.wsgi"], cwd=ROOT, env=_production_env(),
                           capture_output=True, text=True)
    assert serve.returncode != 0
    assert "SECRET_KEY is not set and DEBUG is off" in serve.stderr
    check = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=_production_env(),
                           capture_output=True, text=True)
    assert check.returncode != 0
    assert "healthstream.E001" in check.stderr and "SECRET_KEY is not set and DEBUG is off" in check.stderr
    # a command that signs nothing still runs, and the empty key is never used silently
    plain = subprocess.run([sys.executable, "-c", "import django; django.setup(); "
                            "from django.conf import settings; print(repr(settings.SECRET_KEY))"],
                           cwd=ROOT, env={**_production_env(), "DJANGO_SETTINGS_MODULE": "config.settings"},
                           capture_output=True, text=True)
    assert plain.returncode != 0 and "must not be empty" in plain.stderr


def test_api_and_dashboard_answers_carry_no_store_and_a_strict_csp(world, as_user):
    r = as_user(world.pat).get(f"/api/v1/patients/{world.pat.pk}")
    assert r.status_code == 200
    assert r["Cache-Control"] == "no-store"
    c = Client()
    c.force_login(world.alice.user)
    page = c.get("/dashboard/")
    assert page["Cache-Control"] == "no-store"
    csp = page["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page["X-Content-Type-Options"] == "nosniff"
    login = Client().get("/dashboard/login/")
    assert login["Cache-Control"] == "no-store" and "Content-Security-Policy" in login


def test_a_dashboard_session_ends_after_the_idle_timeout(world, settings):
    settings.SESSION_IDLE_TIMEOUT_S = 600
    c = Client()
    c.force_login(world.alice.user)
    assert c.get("/dashboard/").status_code == 200
    session = c.session
    session[_LAST_ACTIVE] -= 599
    session.save()
    assert c.get("/dashboard/").status_code == 200, "signed out before the timeout"
    session = c.session
    session[_LAST_ACTIVE] -= 601
    session.save()
    r = c.get("/dashboard/")
    assert r.status_code == 302 and r["Location"].startswith("/dashboard/login/")
    assert c.get("/dashboard/").status_code == 302, "the session must stay ended"


def test_the_queues_own_polling_does_not_keep_a_session_alive(world, settings):
    settings.SESSION_IDLE_TIMEOUT_S = 600
    c = Client()
    c.force_login(world.alice.user)
    c.get("/dashboard/")
    session = c.session
    session[_LAST_ACTIVE] -= 500
    session.save()
    stamp = c.session[_LAST_ACTIVE]
    assert c.get("/dashboard/queue/rows", HTTP_HX_REQUEST="true").status_code == 200
    assert c.session[_LAST_ACTIVE] == stamp
    session = c.session
    session[_LAST_ACTIVE] -= 200
    session.save()
    r = c.get("/dashboard/queue/rows", HTTP_HX_REQUEST="true")
    assert r.status_code == 302
