"""Rate limits: a fixed one-minute window per user (or per address when anonymous),
and a lock-out for repeated failed logins. Counters live in Redis (the cache).
Addresses come from ``lib.clientip.client_address`` (trusted proxies only)."""

from __future__ import annotations

import hashlib
import time
import unicodedata

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from lib.clientip import client_address


def _hit(key: str) -> int:
    if cache.add(key, 1, timeout=120):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=120)
        return 1


class FixedWindowThrottle(BaseThrottle):
    """API_RATE_LIMIT_PER_MIN requests a minute per user, API_ANON_RATE_LIMIT_PER_MIN per
    address for anonymous requests. One Redis round trip per request (SimpleRateThrottle
    rewrites a list of timestamps on every request, too costly at this rate)."""

    def allow_request(self, request, view) -> bool:
        user = request.user
        if user is not None and user.is_authenticated and getattr(user, "pk", None) is not None:
            ident, limit = f"u{user.pk}", settings.API_RATE_LIMIT_PER_MIN
        else:
            ident, limit = f"a{self.get_ident(request)}", settings.API_ANON_RATE_LIMIT_PER_MIN
        now = time.time()
        count = _hit(f"rl:api:{ident}:{int(now // 60)}")
        self._wait = 60 - now % 60
        return count <= limit

    def wait(self) -> float:
        return self._wait

    def get_ident(self, request) -> str:
        # DRF's own get_ident trusts any X-Forwarded-For: a client could pick its own bucket
        return client_address(request)


def _fail_key(prefix: str, name: str, address: str = "") -> str:
    return f"login:fail:{prefix}:{name}:{address}" if address else f"login:fail:{prefix}:{name}"


def normalise_username(username: str) -> str:
    """One spelling per name: NFKC, case-folded, trimmed (``Pat``, ``PAT `` and ``pat``)."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


class LoginGuard:
    """Failed sign-ins, counted so that a stranger cannot lock a user out.

    * the pair (normalised username, address): LOGIN_MAX_FAILURES_PER_USER failures lock
      that pair for LOGIN_LOCKOUT_S; the same user from another address is not affected;
    * the address: LOGIN_MAX_FAILURES_PER_ADDRESS failures, whatever the usernames, lock it;
    * the username across all addresses: after LOGIN_SLOW_AFTER failures within the lock-out
      time it is *slowed*, not locked: each address may try it once per LOGIN_SLOW_S. A
      guess spread over many addresses is bounded, and the real user still gets a try.
    """

    def __init__(self, username: str, address: str):
        name = hashlib.sha256(normalise_username(username).encode()).hexdigest()[:32]
        self.pair = _fail_key("pair", name, address)
        self.address = _fail_key("ip", address)
        self.user = _fail_key("user", name)
        self.slow = f"login:fail:slow:{name}:{address}"

    def blocked(self) -> int | None:
        """Seconds to wait before this username may be tried from this address, or None."""
        counts = cache.get_many([self.pair, self.address, self.slow])
        if (counts.get(self.pair, 0) >= settings.LOGIN_MAX_FAILURES_PER_USER
                or counts.get(self.address, 0) >= settings.LOGIN_MAX_FAILURES_PER_ADDRESS):
            return settings.LOGIN_LOCKOUT_S
        if self.slow in counts:
            return settings.LOGIN_SLOW_S
        return None

    def failed(self) -> None:
        for key in (self.pair, self.address, self.user):
            _count(key, settings.LOGIN_LOCKOUT_S)
        if (cache.get(self.user) or 0) >= settings.LOGIN_SLOW_AFTER:
            cache.set(self.slow, 1, timeout=settings.LOGIN_SLOW_S)

    def succeeded(self) -> None:
        cache.delete_many([self.pair, self.slow])


def _count(key: str, timeout: int) -> None:
    if not cache.add(key, 1, timeout=timeout):
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=timeout)


__all__ = ["FixedWindowThrottle", "LoginGuard", "client_address", "normalise_username"]
