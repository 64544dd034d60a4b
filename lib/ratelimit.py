"""Fixed-window rate limits in Redis: one round trip per check (INCR + EXPIRE, pipelined)."""

from __future__ import annotations

import logging
import time

import redis
from django.conf import settings

log = logging.getLogger(__name__)

_client: redis.Redis | None = None
_last_warning: dict[str, float] = {}


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
    logged at most once a minute (why: ``_fail_open``).
    """
    now = time.time()
    window = int(now // window_s)
    name = f"{settings.CACHES['default'].get('KEY_PREFIX', 'hs')}:rl:{scope}:{key}:{window}"
    try:
        pipe = client().pipeline(transaction=False)
        pipe.incr(name)
        pipe.expire(name, window_s * 2)
        count, _ = pipe.execute()
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
        _fail_open(scope, exc)
        return None
    except ValueError as exc:
        # redis-py closes a connection's read buffer when a read times out; a reply that
        # then arrives on it raises "I/O operation on closed file" (redis/redis-py#787,
        # #947). That is a dead connection, not a bug here. The pipeline has already
        # handed it back to the pool: drop the pool's idle connections so the next check
        # reconnects, and fail open as for any unreachable Redis. Only the idle ones:
        # closing connections other API threads are reading from makes their reads fail
        # with AttributeError (the socket is None under them), which CI saw as a 500.
        if "closed file" not in str(exc):
            raise
        client().connection_pool.disconnect(inuse_connections=False)
        _fail_open(scope, exc)
        return None
    if count > limit:
        return max(1, int(window_s - now % window_s))
    return None


def _fail_open(scope: str, exc: BaseException) -> None:
    """Let the event through; say so at most once a minute per scope. Why fail open:
    Redis holds only counters here, never data, and refusing uploads while it is down
    would make every phone retry for nothing while PostgreSQL and Kafka could take them;
    an unlimited minute is bounded by the API's fixed worker pool."""
    now = time.monotonic()
    if now - _last_warning.get(scope, -1e9) >= 60:
        _last_warning[scope] = now
        log.warning("rate limit %s skipped: Redis is unreachable (%s); failing open until it answers",
                    scope, type(exc).__name__)
