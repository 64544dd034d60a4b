"""Webhooks reach public addresses only (SSRF): refused when configured and again at
each delivery, where the name is resolved at send time, so a name that later answers
127.0.0.1 (DNS rebinding) is refused too. The receiver is a real HTTP server on
localhost; with NOTIFY_WEBHOOK_ALLOW_PRIVATE off it must receive nothing."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from alerts.notify import delivery, targets
from alerts.notify.models import Delivery, OnCallShift, WebhookEndpoint
from care.models import CareTeam
from tests.alerts.notify_services import SECRET, start_webhook_receiver
from tests.api.factories import make_alert, make_clinician, make_patient


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("10.1.2.3", "private"), ("192.168.0.10", "private"), ("172.16.5.4", "private"),
    ("fd00::1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"), ("100.64.0.1", "non-public"), ("224.0.0.1", "multicast"),
    ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
    ("93.184.215.14", ""), ("2606:4700:4700::1111", ""),
])
def test_each_kind_of_non_public_address_is_named(address, kind):
    assert targets.address_kind(ipaddress.ip_address(address)) == kind


@pytest.fixture
def private_off(db, settings):
    settings.NOTIFY_WEBHOOK_ALLOW_PRIVATE = False
    return settings


@pytest.mark.parametrize(("url", "message"), [
    ("http://127.0.0.1:8080/hook", r"the webhook host is 127\.0\.0\.1, a loopback address: refused"),
    ("http://localhost/hook", r"the webhook host resolves to (127\.0\.0\.1|::1), a loopback address: refused"),
    ("http://169.254.169.254/latest/meta-data/", r"is 169\.254\.169\.254, a link-local address"),
    ("https://[::1]/hook", "is ::1, a loopback address"),
    ("https://10.0.0.8/hook", r"is 10\.0\.0\.8, a private address"),
    ("https://no-such-host.invalid/hook", "the webhook host does not resolve"),
])
def test_a_webhook_to_a_private_target_is_refused_when_configured(private_off, url, message):
    team = CareTeam.objects.create(name="Ward")
    with pytest.raises(ValidationError) as refused:
        WebhookEndpoint(team=team, url=url, secret="s").full_clean()
    text = " ".join(refused.value.message_dict["url"])
    assert re.search(message, text), text
    if "does not resolve" not in message:
        assert "NOTIFY_WEBHOOK_ALLOW_PRIVATE=1" in text


def test_a_public_address_is_accepted_and_private_ones_too_when_allowed(private_off):
    team = CareTeam.objects.create(name="Ward")
    WebhookEndpoint(team=team, url="https://93.184.215.14/hook", secret="s").full_clean()
    private_off.NOTIFY_WEBHOOK_ALLOW_PRIVATE = True
    WebhookEndpoint(team=team, url="http://127.0.0.1:8080/hook", secret="s").full_clean()


def test_notify_demo_refuses_a_loopback_receiver_when_private_targets_are_not_allowed(private_off, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("k")
    with pytest.raises(CommandError, match="--webhook-url: the webhook host is 127.0.0.1, a loopback"):
        call_command("notify_demo", "--webhook-url", "http://127.0.0.1:18026/", "--secret-file", str(secret))


@pytest.fixture
def red_alert_world(db):
    team = CareTeam.objects.create(name="Ward")
    carol = make_clinician("carol", "Dr Carol", team)
    now = timezone.now()
    OnCallShift.objects.create(team=team, clinician=carol, starts_at=now - timedelta(hours=1),
                               ends_at=now + timedelta(hours=1))
    return {"team": team, "pat": make_patient("pat", "Pat", team)}


@pytest.fixture
def receiver():
    r = start_webhook_receiver()
    yield r
    r.stop()


def _plan_webhook(world, url: str) -> Delivery:
    WebhookEndpoint.objects.create(team=world["team"], url=url, secret=SECRET)  # as stored earlier
    delivery.plan_red(make_alert(world["pat"], severity="red"), timezone.now())
    return Delivery.objects.get(channel=Delivery.WEBHOOK)


def test_a_delivery_to_a_loopback_receiver_is_refused_at_once_and_nothing_reaches_it(
        private_off, red_alert_world, receiver, caplog):
    row = _plan_webhook(red_alert_world, receiver.url)
    assert delivery.attempt(row.pk) == Delivery.DEAD
    row.refresh_from_db()
    assert row.attempts == 1
    assert row.last_error.startswith("the webhook host is 127.0.0.1, a loopback address: refused")
    assert receiver.received == []
    assert "/hooks/healthstream" not in caplog.text  # the URL is never logged


def test_a_name_that_rebinds_to_127_0_0_1_after_configuration_is_refused_at_send_time(
        private_off, red_alert_world, receiver, monkeypatch):
    port = int(receiver.url.split(":")[2].split("/")[0])
    answers = {"first": "93.184.215.14"}

    def rebinding_dns(host, port_):
        assert host == "hooks.clinic.test"
        ip, answers["first"] = answers["first"], "127.0.0.1"
        return [(2, ip)]

    monkeypatch.setattr(targets, "resolve", rebinding_dns)
    url = f"http://hooks.clinic.test:{port}/hooks/healthstream"
    team = red_alert_world["team"]
    WebhookEndpoint(team=team, url=url, secret=SECRET).full_clean()  # public when configured
    row = _plan_webhook(red_alert_world, url)
    assert delivery.attempt(row.pk) == Delivery.DEAD
    row.refresh_from_db()
    assert row.last_error.startswith("the webhook host resolves to 127.0.0.1, a loopback address")
    assert receiver.received == []


def test_the_checked_connection_goes_to_the_checked_address_and_keeps_the_name(
        private_off, red_alert_world, receiver, monkeypatch):
    """The connection uses the address the check passed, not a second lookup: the name
    below exists in no DNS, and the request still carries it as its Host."""
    port = int(receiver.url.split(":")[2].split("/")[0])
    looked_up = []
    monkeypatch.setattr(targets, "resolve", lambda host, p: looked_up.append(host) or [(2, "127.0.0.1")])
    monkeypatch.setattr(targets, "check_address", lambda ip, host: None)  # pretend it is public
    row = _plan_webhook(red_alert_world, f"http://hooks.clinic.test:{port}/hooks/healthstream")
    assert delivery.attempt(row.pk) == Delivery.SENT
    got = receiver.wait_for(1, 5)
    assert len(got) == 1 and got[0].verified
    assert got[0].headers["Host"] == f"hooks.clinic.test:{port}"
    assert looked_up == ["hooks.clinic.test"]
