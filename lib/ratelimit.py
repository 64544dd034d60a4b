"""Fixed-window rate limits in Redis: one round trip per check (INCR + EXPIRE, pipelined)."""

from __future__ import annotations

import time

import redis
from django.conf import settings

_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL)
    return _client


def hit(scope: str, key: str | int, limit: int, window_s: int = 60) -> int | None:
    """Count one event; return the seconds to wait when over ``limit``, else None."""
    now = time.time()
    window = int(now // window_s)
    name = f"{settings.CACHES['default'].get('KEY_PREFIX', 'hs')}:rl:{scope}:{key}:{window}"
    pipe = client().pipeline(transaction=False)
    pipe.incr(name)
    pipe.expire(name, window_s * 2)
    count, _ = pipe.execute()
    if count > limit:
        return max(1, int(window_s - now % window_s))
    return None
