"""Finding 3 (issue 15): API tokens are hashed, expire, are one per client; signing out
ends one client or all; a password change ends them all."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.api.factories import PASSWORD

TOKEN = "/api/v1/auth/token"


def _sign_in(username: str = "pat", password: str = PASSWORD) -> str:
    r = APIClient().post(TOKEN, {"username": username, "password": password}, format="json")
    assert r.status_code == 200, r.content
    return r.json()["token"]


def _client(token: str) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return c


def _works(token: str) -> bool:
    code = _client(token).get("/api/v1/me").status_code
    assert code in (200, 401, 403), code
    return code == 200


def test_tokens_are_stored_only_as_digests(world):
    raw = _sign_in()
    assert raw.startswith("hsu_") and len(raw) > 60
    stored = AuthToken.objects.filter(user=world.pat.user)
    assert stored.count() == 1
    row = stored.get()
    assert raw not in (row.digest, row.token_key) and row.token_key == raw[:15]
    assert row.expiry is not None


def test_each_sign_in_is_its_own_client_and_signing_out_ends_only_that_one(world):
    phone, tablet = _sign_in(), _sign_in()
    assert phone != tablet and _works(phone) and _works(tablet)
    assert _client(phone).post("/api/v1/auth/logout").status_code == 204
    assert not _works(phone) and _works(tablet)


def test_logout_all_ends_every_client_of_the_user_only(world):
    phone, tablet, other = _sign_in(), _sign_in(), _sign_in("pat2")
    assert _client(phone).post("/api/v1/auth/logout-all").status_code == 204
    assert not _works(phone) and not _works(tablet) and _works(other)


def test_a_password_change_ends_every_token(world):
    phone = _sign_in()
    other = _sign_in("pat2")
    user = world.pat.user
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    assert _works(phone), "a save that does not touch the password keeps the tokens"
    user.set_password("a-new-and-long-password")
    user.save()
    assert not _works(phone) and _works(other)
    assert _works(_sign_in(password="a-new-and-long-password"))


def test_an_expired_token_is_refused(world):
    token = _sign_in()
    AuthToken.objects.filter(user=world.pat.user).update(expiry=timezone.now() - timedelta(seconds=1))
    assert not _works(token)
    assert not AuthToken.objects.filter(user=world.pat.user).exists(), "knox deletes it on sight"


def test_use_extends_a_token_but_never_past_the_maximum_age(world, settings):
    token = _sign_in()
    row = AuthToken.objects.get(user=world.pat.user)
    AuthToken.objects.filter(pk=row.pk).update(expiry=timezone.now() + timedelta(days=1))
    assert _works(token)
    extended = AuthToken.objects.get(pk=row.pk).expiry
    assert extended > timezone.now() + timedelta(days=settings.API_TOKEN_IDLE_DAYS - 1)
    AuthToken.objects.filter(pk=row.pk).update(created=timezone.now() - timedelta(days=settings.API_TOKEN_MAX_DAYS),
                                               expiry=timezone.now() + timedelta(hours=1))
    assert _works(token)
    capped = AuthToken.objects.get(pk=row.pk).expiry
    assert capped <= timezone.now() + timedelta(hours=1)


def test_a_user_keeps_at_most_the_configured_number_of_live_tokens(world, settings):
    settings.API_TOKENS_PER_USER = 3
    tokens = [_sign_in() for _ in range(4)]
    assert AuthToken.objects.filter(user=world.pat.user).count() == 3
    assert not _works(tokens[0]) and all(_works(t) for t in tokens[1:])


def test_a_token_that_is_not_utf8_is_refused_not_a_server_error(world):
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION="Token hsu_\xe9\xe9\xe9")
    assert c.get("/api/v1/me").status_code in (401, 403)


def test_a_session_signs_out_through_the_api_too(world):
    c = APIClient()
    c.force_login(world.pat.user)
    assert c.get("/api/v1/me").status_code == 200
    assert c.post("/api/v1/auth/logout").status_code == 204
    assert c.get("/api/v1/me").status_code == 401
