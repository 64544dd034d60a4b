"""Finding 2 (issue 15): sign-in failures are keyed on the normalised username *and* the
address, so a stranger alone cannot lock a user out; client addresses come only from
configured trusted proxies, for the lock-out and the anonymous rate limit alike."""

from __future__ import annotations

from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from lib.clientip import client_address
from tests.api.factories import PASSWORD

TOKEN = "/api/v1/auth/token"


def _sign_in(username: str, password: str, address: str, **headers):
    return APIClient(REMOTE_ADDR=address, **headers).post(
        TOKEN, {"username": username, "password": password}, format="json")


def test_a_stranger_failing_under_any_capitalisation_does_not_lock_the_user_out_elsewhere(world):
    for name in ("pat", "Pat", "PAT", " pat", "pAt", "PAt"):
        assert _sign_in(name, "wrong", "203.0.113.9").status_code in (400, 429)
    locked = _sign_in("pat", PASSWORD, "203.0.113.9")
    assert locked.status_code == 429, "the stranger's own address is locked for that user"
    assert int(locked["Retry-After"]) == 900
    assert _sign_in("pat", PASSWORD, "198.51.100.7").status_code == 200


def test_a_stranger_does_not_lock_the_user_out_of_the_dashboard(world):
    stranger = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(6):
        stranger.post("/dashboard/login/", {"username": "ALICE", "password": "wrong"})
    assert stranger.post("/dashboard/login/", {"username": "alice", "password": PASSWORD}).status_code == 429
    me = Client(REMOTE_ADDR="198.51.100.7")
    r = me.post("/dashboard/login/", {"username": "alice", "password": PASSWORD})
    assert r.status_code == 302 and r["Location"] == "/dashboard/"


def test_a_username_guessed_from_many_addresses_is_slowed_not_locked(world, settings):
    settings.LOGIN_SLOW_AFTER = 10
    for k in range(10):
        assert _sign_in("pat", "wrong", f"203.0.113.{k + 1}").status_code == 400
    # now each address gets one try a minute at this username ...
    assert _sign_in("pat", "wrong", "192.0.2.1").status_code == 400
    slowed = _sign_in("pat", "wrong", "192.0.2.1")
    assert slowed.status_code == 429 and int(slowed["Retry-After"]) == settings.LOGIN_SLOW_S
    # ... and the real user's first try from their own address still gets in
    assert _sign_in("pat", PASSWORD, "198.51.100.7").status_code == 200
    # other usernames are not slowed
    assert _sign_in("pat2", PASSWORD, "192.0.2.1").status_code == 200


def test_an_address_failing_for_many_usernames_is_locked(world, settings):
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 4
    for k in range(4):
        _sign_in(f"nobody{k}", "wrong", "203.0.113.9")
    assert _sign_in("pat", PASSWORD, "203.0.113.9").status_code == 429
    assert _sign_in("pat", PASSWORD, "198.51.100.7").status_code == 200


def test_a_client_supplied_forwarded_for_does_not_escape_the_anonymous_rate_limit(world, settings):
    settings.API_ANON_RATE_LIMIT_PER_MIN = 3
    codes = [APIClient(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR=f"10.9.9.{k}").post(TOKEN, {}, format="json")
             .status_code for k in range(4)]
    assert codes == [400, 400, 400, 429]


def test_a_client_supplied_forwarded_for_does_not_dodge_the_lock_out(world):
    for k in range(5):
        _sign_in("pat", "wrong", "203.0.113.9", HTTP_X_FORWARDED_FOR=f"10.9.9.{k}")
    assert _sign_in("pat", PASSWORD, "203.0.113.9", HTTP_X_FORWARDED_FOR="10.9.9.99").status_code == 429


def test_behind_a_trusted_proxy_the_nearest_untrusted_hop_is_the_client(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::1"]
    rf = RequestFactory()

    def addr(remote, xff=None):
        meta = {"REMOTE_ADDR": remote}
        if xff is not None:
            meta["HTTP_X_FORWARDED_FOR"] = xff
        return client_address(rf.get("/", **meta))

    assert addr("10.0.0.5", "198.51.100.7") == "198.51.100.7"
    assert addr("10.0.0.5", "6.6.6.6, 198.51.100.7, 10.0.0.7") == "198.51.100.7", "a spoofed first hop"
    assert addr("fd00::1", "2001:db8::1") == "2001:db8::1"
    assert addr("10.0.0.5") == "10.0.0.5"
    assert addr("10.0.0.5", "not-an-address") == "invalid"
    assert addr("203.0.113.9", "198.51.100.7") == "203.0.113.9", "not from a trusted proxy"
    settings.TRUSTED_PROXIES = []
    assert addr("10.0.0.5", "198.51.100.7") == "10.0.0.5"


def test_behind_a_trusted_proxy_one_clients_failures_do_not_lock_out_another(world, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 5
    for k in range(6):
        _sign_in(f"nobody{k}", "wrong", "10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert _sign_in("pat", PASSWORD, "10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 429
    assert _sign_in("pat", PASSWORD, "10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 200
