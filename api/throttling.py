"""Rate limits: a fixed one-minute window per user (or per address when anonymous),
and a lock-out for repeated failed logins. Counters live in Redis (the cache)."""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle


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


class LoginGuard:
    """Counts failed logins per username and per address; blocks both for a while."""

    def __init__(self, username: str, address: str):
        digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        self.keys = (f"login:fail:user:{digest}", f"login:fail:ip:{address}")
        self.limits = (settings.LOGIN_MAX_FAILURES_PER_USER, settings.LOGIN_MAX_FAILURES_PER_ADDRESS)

    def blocked(self) -> bool:
        counts = cache.get_many(self.keys)
        return any(counts.get(k, 0) >= limit for k, limit in zip(self.keys, self.limits, strict=True))

    def failed(self) -> None:
        for key in self.keys:
            if not cache.add(key, 1, timeout=settings.LOGIN_LOCKOUT_S):
                try:
                    cache.incr(key)
                except ValueError:
                    cache.add(key, 1, timeout=settings.LOGIN_LOCKOUT_S)

    def succeeded(self) -> None:
        cache.delete(self.keys[0])


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"
