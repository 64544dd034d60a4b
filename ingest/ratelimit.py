"""Fixed-window rate limits in Redis: one round trip per check (INCR + EXPIRE, pipelined)."""

from __future__ import annotations

import time

import redis
from django.conf import settings

from config.outage import fail_open

_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        # Short timeouts: while Redis is down an upload waits at most about a second for it.
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5,
                                       socket_timeout=1.0)
    return _client


def hit(scope: str, key: str | int, limit: int, window_s: int = 60) -> int | None:
    """Count one event; return the seconds to wait when over ``limit``, else None.

    Fails open while Redis is unreachable: the event is let through and a warning
    logged at most once a minute (why: config/outage.py).
    """
    now = time.time()
    window = int(now // window_s)
    name = f"{settings.CACHES['default'].get('KEY_PREFIX', 'hs')}:rl:{scope}:{key}:{window}"
    try:
        count, _ = client().pipeline(transaction=False).incr(name).expire(name, window_s * 2).execute()
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
        fail_open(f"rate limit {scope}", exc)
        return None
    if count > limit:
        return max(1, int(window_s - now % window_s))
    return None
