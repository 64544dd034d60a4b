"""Fixtures of the API tests: the two-team world, clients signed in as each person."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.api.factories import build_world


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit and lock-out counters live in Redis: start each test from zero."""
    _clear_counters()
    yield
    _clear_counters()


def _clear_counters():
    client = cache._cache.get_client(None, write=True)  # django's RedisCache client
    prefix = cache.make_key("")
    for pattern in ("rl:api:*", "login:fail:*"):
        keys = list(client.scan_iter(match=f"{prefix}{pattern}"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def world(db):
    return build_world()


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def as_user(world):
    """as_user(clinician_or_patient) -> an APIClient with that person's token."""
    def make(who):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {world.token(who)}")
        return client
    return make


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 at Django's strength takes ~0.3 s a user: too slow for a world per test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
