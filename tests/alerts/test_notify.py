"""Notifications: routing (on call, preferences, quiet hours), signed webhooks, email
through a real SMTP server process, retries with backoff, dead letters, the digest.

Celery runs eagerly here (``deliver.delay`` runs in the test); the test with a real
worker process is tests/alerts/test_notify_worker.py."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from time import sleep

import pytest
from django.utils import timezone

from alerts import workflow
from alerts.models import Alert
from alerts.notify import delivery, routing, signing, tasks
from alerts.notify.models import Delivery, NotificationPreference, OnCallShift, WebhookEndpoint
from care.models import CareTeam
from tests.alerts.notify_services import SECRET, start_smtp_sink, start_webhook_receiver
from tests.api.factories import make_alert, make_clinician, make_patient

# --- pure steps ------------------------------------------------------------------------

def test_a_signature_verifies_only_with_the_same_secret_body_and_a_fresh_timestamp():
    body = b'{"event":"alert.red"}'
    sig = signing.sign("k1", 1_700_000_000, body)
    assert sig.startswith("v1=") and len(sig) == 3 + 64
    assert signing.verify("k1", "1700000000", sig, body, now=1_700_000_100)
    assert not signing.verify("k2", "1700000000", sig, body, now=1_700_000_100)
    assert not signing.verify("k1", "1700000000", sig, body + b" ", now=1_700_000_100)
    assert not signing.verify("k1", "1700000001", sig, body, now=1_700_000_100)
    assert not signing.verify("k1", "1700000000", sig, body, now=1_700_000_000 + 301)
    assert not signing.verify("k1", None, sig, body)


def test_quiet_hours_that_span_midnight_are_read_in_the_clinicians_time_zone():
    pref = NotificationPreference(quiet_start=time(22), quiet_end=time(7), timezone="Europe/Paris")
    # 21:30 UTC is 22:30 in Paris (winter): quiet; 06:30 UTC is 07:30: not quiet.
    assert pref.in_quiet_hours(datetime(2026, 11, 30, 21, 30, tzinfo=UTC))
    assert pref.in_quiet_hours(datetime(2026, 12, 1, 5, 30, tzinfo=UTC))
    assert not pref.in_quiet_hours(datetime(2026, 12, 1, 6, 30, tzinfo=UTC))
    assert not NotificationPreference().in_quiet_hours(datetime(2026, 12, 1, 3, tzinfo=UTC))


# --- routing ---------------------------------------------------------------------------

@pytest.fixture
def ward(db):
    """Team "Ward" (alice, carol, dan) with patient pat; team "Night" (nina) also reads pat."""
    ward = CareTeam.objects.create(name="Ward")
    night = CareTeam.objects.create(name="Night")
    alice = make_clinician("alice", "Dr Alice", ward)
    carol = make_clinician("carol", "Dr Carol", ward)
    dan = make_clinician("dan", "Dr Dan", ward)
    nina = make_clinician("nina", "Dr Nina", night)
    for c in (alice, carol, dan, nina):
        c.user.email = f"{c.user.username}@clinic.test"
        c.user.save()
    pat = make_patient("pat", "Pat", ward)
    from care.models import Assignment, Consent
    Assignment.objects.create(team=night, patient=pat)
    Consent.objects.create(patient=pat, team=night)
    return {"ward": ward, "night": night, "alice": alice, "carol": carol, "dan": dan,
            "nina": nina, "pat": pat}


def _shift(team, clinician, now):
    return OnCallShift.objects.create(team=team, clinician=clinician,
                                      starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=7))


def test_a_red_alert_goes_to_each_teams_on_call_clinician_not_to_the_rest_of_the_team(ward):
    now = timezone.now()
    _shift(ward["ward"], ward["carol"], now)
    _shift(ward["night"], ward["nina"], now)
    OnCallShift.objects.create(team=ward["ward"], clinician=ward["dan"],
                               starts_at=now - timedelta(hours=9), ends_at=now - timedelta(hours=1))
    alert = make_alert(ward["pat"], severity="red")
    names = sorted(c.display_name for c in routing.red_email_recipients(alert, now))
    assert names == ["Dr Carol", "Dr Nina"]


def test_a_team_with_nobody_on_call_tells_every_member_whatever_their_quiet_hours(ward):
    now = timezone.now()
    _shift(ward["night"], ward["nina"], now)
    NotificationPreference.objects.create(clinician=ward["alice"], quiet_start=time(0),
                                          quiet_end=time(23, 59))
    alert = make_alert(ward["pat"], severity="red")
    names = sorted(c.display_name for c in routing.red_email_recipients(alert, now))
    assert names == ["Dr Alice", "Dr Carol", "Dr Dan", "Dr Nina"]


def test_an_off_call_clinician_who_opted_in_gets_red_alerts_except_in_quiet_hours(ward):
    now = timezone.now()
    _shift(ward["ward"], ward["carol"], now)
    _shift(ward["night"], ward["nina"], now)
    pref = NotificationPreference.objects.create(clinician=ward["dan"], red_when_off_call=True)
    alert = make_alert(ward["pat"], severity="red")
    assert "Dr Dan" in {c.display_name for c in routing.red_email_recipients(alert, now)}
    pref.quiet_start, pref.quiet_end = time(0), time(23, 59, 59)
    pref.save()
    assert "Dr Dan" not in {c.display_name for c in routing.red_email_recipients(alert, now)}


def test_on_call_overrides_quiet_hours_and_email_off_leaves_only_the_webhook(ward):
    now = timezone.now()
    _shift(ward["ward"], ward["carol"], now)
    _shift(ward["night"], ward["nina"], now)
    NotificationPreference.objects.create(clinician=ward["carol"], quiet_start=time(0),
                                          quiet_end=time(23, 59, 59))
    NotificationPreference.objects.create(clinician=ward["nina"], email=False)
    hook = WebhookEndpoint.objects.create(team=ward["night"], url="http://127.0.0.1:9/x", secret="s")
    alert = make_alert(ward["pat"], severity="red")
    assert [c.display_name for c in routing.red_email_recipients(alert, now)] == ["Dr Carol"]
    assert routing.red_endpoints(alert) == [hook]


def test_an_escalation_to_a_team_goes_to_its_on_call_clinician_and_to_its_webhook(ward):
    now = timezone.now()
    _shift(ward["night"], ward["nina"], now)
    hook = WebhookEndpoint.objects.create(team=ward["night"], url="http://127.0.0.1:9/x", secret="s")
    WebhookEndpoint.objects.create(team=ward["ward"], url="http://127.0.0.1:9/y", secret="s")
    alert = make_alert(ward["pat"], severity="yellow")
    step = workflow.escalate(alert, ward["alice"].user, team_id=ward["night"].pk, reason="please")
    assert [c.display_name for c in routing.escalation_email_recipients(step, now)] == ["Dr Nina"]
    assert routing.escalation_endpoints(step, alert.patient_id) == [hook]


def test_an_escalation_to_a_clinician_emails_them_even_in_their_quiet_hours(ward):
    NotificationPreference.objects.create(clinician=ward["dan"], quiet_start=time(0),
                                          quiet_end=time(23, 59, 59))
    alert = make_alert(ward["pat"], severity="yellow")
    step = workflow.escalate(alert, ward["alice"].user, clinician_id=ward["dan"].pk)
    assert [c.display_name for c in routing.escalation_email_recipients(step, timezone.now())] == ["Dr Dan"]


# --- delivery through a real SMTP server and a real HTTP receiver ----------------------

@pytest.fixture(scope="module")
def smtp(tmp_path_factory):
    sink = start_smtp_sink(tmp_path_factory.mktemp("smtp"))
    yield sink
    sink.proc.terminate()
    sink.proc.wait(10)


@pytest.fixture
def receiver(settings):
    """A real HTTP receiver on 127.0.0.1, which webhooks may reach only with
    NOTIFY_WEBHOOK_ALLOW_PRIVATE on (tests of the refusal turn it off again)."""
    settings.NOTIFY_WEBHOOK_ALLOW_PRIVATE = True
    r = start_webhook_receiver()
    yield r
    r.stop()


@pytest.fixture
def mail_to_sink(settings, smtp):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from config.celery import app
    app.conf.task_always_eager = True
    smtp.clear()
    yield smtp
    app.conf.task_always_eager = False


def test_a_red_alert_is_emailed_and_posted_signed_once_however_often_it_is_swept(ward, mail_to_sink, receiver):
    now = timezone.now()
    _shift(ward["ward"], ward["carol"], now)
    _shift(ward["night"], ward["nina"], now)
    WebhookEndpoint.objects.create(team=ward["ward"], url=receiver.url, secret=SECRET)
    alert = make_alert(ward["pat"], severity="red")  # evidence: value 142, baseline 64
    tasks.sweep()
    tasks.sweep()
    mails = mail_to_sink.wait_for(2, 10)
    hooks = receiver.wait_for(1, 10)
    assert sorted(m["To"] for m in mails) == ["carol@clinic.test", "nina@clinic.test"]
    assert all(f"patient {ward['pat'].pk}" in m["Subject"] for m in mails)
    text = mails[0].get_payload()
    assert f"/dashboard/patients/{ward['pat'].pk}/#alert-{alert.pk}" in text
    assert "142" not in text and "64" not in text and "Pat" not in text.replace("Patient", "")
    assert len(hooks) == 1 and hooks[0].verified
    body = hooks[0].json()
    assert body["event"] == "alert.red"
    assert body["alert"]["id"] == alert.pk and body["alert"]["severity"] == "red"
    assert b"142" not in hooks[0].body and "evidence" not in body["alert"]
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.SENT}
    assert Delivery.objects.count() == 3
    sleep(0.5)
    assert len(mail_to_sink.messages()) == 2 and len(receiver.received) == 1


def test_a_yellow_alert_sends_nothing_until_it_turns_red(ward, mail_to_sink, receiver):
    WebhookEndpoint.objects.create(team=ward["ward"], url=receiver.url, secret=SECRET)
    alert = make_alert(ward["pat"], severity="yellow")
    tasks.sweep()
    assert Delivery.objects.count() == 0
    Alert.objects.filter(pk=alert.pk).update(severity="red", updated_at=timezone.now())
    tasks.sweep()
    assert len(receiver.wait_for(1, 10)) == 1


def test_an_escalation_emails_the_named_clinician_and_posts_to_the_teams_webhook(ward, mail_to_sink, receiver):
    WebhookEndpoint.objects.create(team=ward["ward"], url=receiver.url, secret=SECRET)
    alert = make_alert(ward["pat"], severity="yellow")
    step = workflow.escalate(alert, ward["alice"].user, clinician_id=ward["dan"].pk, reason="look")
    tasks.sweep()
    mails = mail_to_sink.wait_for(1, 10)
    hooks = receiver.wait_for(1, 10)
    assert [m["To"] for m in mails] == ["dan@clinic.test"]
    assert mails[0]["Subject"].startswith("[healthstream] Escalated to you")
    body = hooks[0].json()
    assert hooks[0].verified and body["event"] == "alert.escalated"
    assert body["escalation"]["action"] == step.pk and body["escalation"]["to_clinician"] == ward["dan"].pk


def test_a_failing_webhook_is_retried_with_exponential_backoff_then_dead_lettered(ward, mail_to_sink,
                                                                                 receiver, settings):
    settings.NOTIFY_MAX_ATTEMPTS, settings.NOTIFY_RETRY_BASE_S = 4, 30.0
    receiver.fail_with = 503
    WebhookEndpoint.objects.create(team=ward["ward"], url=receiver.url, secret=SECRET)
    alert = make_alert(ward["pat"], severity="red")
    delivery.plan_red(alert, timezone.now())
    row = Delivery.objects.get(channel=Delivery.WEBHOOK)
    waits = []
    for _ in range(4):
        before = timezone.now()
        status = delivery.attempt(row.pk)
        row.refresh_from_db()
        waits.append(round((row.next_attempt_at - before).total_seconds()))
        assert delivery.attempt(row.pk) == ""  # not due yet: a second worker takes nothing
        Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert status == Delivery.DEAD and row.status == Delivery.DEAD and row.attempts == 4
    assert waits[:3] == [30, 60, 120]
    assert row.last_error == "webhook answered 503"
    assert len(receiver.received) == 4 and all(r.verified for r in receiver.received)
    assert delivery.attempt(row.pk) == "" and len(receiver.received) == 4


def test_an_unreachable_smtp_server_is_retried_and_the_log_names_no_address(ward, settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9
    _shift(ward["ward"], ward["carol"], timezone.now())
    _shift(ward["night"], ward["nina"], timezone.now())
    alert = make_alert(ward["pat"], severity="red")
    delivery.plan_red(alert, timezone.now())
    row = Delivery.objects.filter(channel=Delivery.EMAIL).first()
    assert delivery.attempt(row.pk) == Delivery.RETRYING
    assert "ConnectionRefusedError" in Delivery.objects.get(pk=row.pk).last_error
    assert f"delivery {row.pk} (email) try 1 failed: ConnectionRefusedError" in caplog.text
    assert "@clinic.test" not in caplog.text


def test_the_yellow_digest_lists_todays_yellow_alerts_once_at_the_digest_hour(ward, mail_to_sink):
    NotificationPreference.objects.create(clinician=ward["alice"], digest_hour=0)
    NotificationPreference.objects.create(clinician=ward["carol"], digest_hour=0, yellow_digest=False)
    NotificationPreference.objects.create(clinician=ward["dan"], digest_hour=23,
                                          timezone="Pacific/Kiritimati")
    NotificationPreference.objects.create(clinician=ward["nina"], digest_hour=0, quiet_start=time(0),
                                          quiet_end=time(23, 59, 59))
    yellow = make_alert(ward["pat"], detector="sleep_debt", severity="yellow")
    make_alert(ward["pat"], detector="wear_gap", severity="yellow",
               opened_at=timezone.now() - timedelta(hours=30))
    make_alert(ward["pat"], detector="hr_high_at_rest", severity="red")
    at = timezone.now().replace(hour=23, minute=30)  # Kiritimati (UTC+14) is then 13:30 next day
    delivery.plan_digests(at)
    delivery.plan_digests(at)
    rows = Delivery.objects.filter(kind=Delivery.DIGEST)
    assert [r.clinician.display_name for r in rows] == ["Dr Alice"]
    assert rows[0].payload == {"alerts": [yellow.pk]}
    tasks.deliver(rows[0].pk)
    mails = mail_to_sink.wait_for(1, 10)
    assert [m["To"] for m in mails] == ["alice@clinic.test"]
    assert "1 yellow alert today" in mails[0]["Subject"] and "Short nights in a row" in mails[0].get_payload()


# --- the local run's pieces (make run) -------------------------------------------------

def test_notify_demo_puts_a_lead_on_call_and_points_a_webhook_at_the_receiver_once(ward, tmp_path, settings):
    from django.core.management import call_command

    settings.NOTIFY_WEBHOOK_ALLOW_PRIVATE = True  # make run sets it for its local receiver

    from care.models import TeamMembership

    TeamMembership.objects.filter(team=ward["ward"], clinician=ward["dan"]).update(role="lead")
    ward["alice"].user.email = ""
    ward["alice"].user.save()
    secret = tmp_path / "secret"
    secret.write_text("demo-secret\n")
    for _ in range(2):
        call_command("notify_demo", "--webhook-url", "http://127.0.0.1:18026/", "--secret-file", str(secret))
    now = timezone.now()
    assert [c.display_name for c in routing.on_call(ward["ward"].pk, now)] == ["Dr Dan"]
    assert [c.display_name for c in routing.on_call(ward["night"].pk, now)] == ["Dr Nina"]
    assert OnCallShift.objects.count() == 2
    hooks = WebhookEndpoint.objects.order_by("team__name")
    assert [(h.team.name, h.url, h.secret) for h in hooks] == [
        ("Night", "http://127.0.0.1:18026/", "demo-secret"), ("Ward", "http://127.0.0.1:18026/", "demo-secret")]
    ward["alice"].user.refresh_from_db()
    assert ward["alice"].user.email == "alice@localhost"


def test_the_local_receiver_accepts_a_signed_delivery_and_refuses_a_forged_one():
    import threading

    import requests

    from alerts.notify.receiver import make_server

    said: list[str] = []
    server = make_server("127.0.0.1", 0, "k", said.append)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    body = b'{"event":"alert.red","delivery":3,"alert":{"id":9,"patient":4,"severity":"red"}}'
    ts = int(datetime.now(UTC).timestamp())
    try:
        good = requests.post(url, data=body, timeout=5, headers={
            signing.TIMESTAMP_HEADER: str(ts), signing.SIGNATURE_HEADER: signing.sign("k", ts, body)})
        forged = requests.post(url, data=body, timeout=5, headers={
            signing.TIMESTAMP_HEADER: str(ts), signing.SIGNATURE_HEADER: signing.sign("x", ts, body)})
    finally:
        server.shutdown()
        server.server_close()
    assert (good.status_code, forged.status_code) == (204, 401)
    assert said == ["verified alert.red delivery 3 alert 9 patient 4 severity red",
                    "refused a request with a bad or stale signature"]
