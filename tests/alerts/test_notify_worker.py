"""The feature end to end: an alert row written the way the alert sink writes it (its
own SQL, its own connection) reaches the SMTP server process as an email and the HTTP
receiver as a signed webhook within 30 s, delivered by a real Celery worker and beat
process against the test run's Redis and PostgreSQL (no eager mode)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.messages import AlertMessage
from alerts.notify.models import Delivery, OnCallShift, WebhookEndpoint
from alerts.sink import AlertSink
from care.models import CareTeam
from tests.alerts.notify_services import SECRET, start_smtp_sink, start_webhook_receiver
from tests.api.factories import make_clinician, make_patient
from tests.conftest import ROOT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WITHIN_S = 30.0


def _worker_env(settings, smtp_port: int) -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
                     f"{db['PORT'] or 5432}/{db['NAME']}",
        EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(smtp_port), NOTIFY_SWEEP_S="2",
        CELERY_TASK_ALWAYS_EAGER="false", PYTHONUNBUFFERED="1",
        NOTIFY_WEBHOOK_ALLOW_PRIVATE="1",  # the receiver is on 127.0.0.1
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    return env


def _wait_ready(proc: subprocess.Popen, log_path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the Celery worker exited: {log_path.read_text()[-3000:]}")
        if " ready." in log_path.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"the Celery worker was not ready after {timeout}s: {log_path.read_text()[-3000:]}")


def test_a_red_alert_row_reaches_the_smtp_server_and_the_webhook_within_30_s(settings, tmp_path):
    smtp = start_smtp_sink(tmp_path)
    receiver = start_webhook_receiver()
    team = CareTeam.objects.create(name="Ward")
    carol = make_clinician("carol", "Dr Carol", team)
    carol.user.email = "carol@clinic.test"
    carol.user.save()
    make_clinician("dan", "Dr Dan", team)  # not on call: hears nothing
    pat = make_patient("pat", "Pat", team)
    now = timezone.now()
    OnCallShift.objects.create(team=team, clinician=carol, starts_at=now - timedelta(hours=1),
                               ends_at=now + timedelta(hours=8))
    WebhookEndpoint.objects.create(team=team, url=receiver.url, secret=SECRET)

    log_path = tmp_path / "celery.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "--pool", "solo",
             "--loglevel", "INFO", "--schedule", str(tmp_path / "beat-schedule"),
             "--hostname", f"notify-test-{os.getpid()}@%h"],
            cwd=ROOT, env=_worker_env(settings, smtp.port), stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(worker, log_path)
        start_ms = int(time.time() * 1000) - 600_000
        message = AlertMessage(pat.pk, "hr_high_at_rest", "red", "open", 1, start_ms,
                               start_ms + 300_000, {"peak_bpm": 151.0, "minutes": 12})
        sink = AlertSink(group_id="unused")
        written_at = time.monotonic()
        assert sink._write([message]) == set()
        sink.conn.close()

        mails = smtp.wait_for(1, WITHIN_S)
        hooks = receiver.wait_for(1, WITHIN_S - (time.monotonic() - written_at))
        mail_s = time.monotonic() - written_at
        print(f"email and webhook {mail_s:.1f} s after the alert row; webhook at "
              f"{hooks[0].at - written_at:.1f} s" if hooks else "no webhook")
        assert [m["To"] for m in mails] == ["carol@clinic.test"]
        assert len(hooks) == 1 and hooks[0].verified
        assert hooks[0].at - written_at < WITHIN_S and mail_s < WITHIN_S
        assert hooks[0].json()["alert"]["patient"] == pat.pk
        assert b"151" not in hooks[0].body and "151" not in mails[0].get_payload()
        deadline = time.monotonic() + 10
        while Delivery.objects.exclude(status=Delivery.SENT).exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sorted(Delivery.objects.values_list("channel", "status")) == [
            ("email", "sent"), ("webhook", "sent")]
    finally:
        worker.terminate()
        worker.wait(30)
        receiver.stop()
        smtp.proc.terminate()
        smtp.proc.wait(10)
