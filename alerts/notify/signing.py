"""Webhook signatures: HMAC-SHA256 over ``<timestamp>.<body>`` with the endpoint's secret.

The receiver recomputes it from the raw body and the ``X-Healthstream-Timestamp``
header, compares in constant time, and refuses a timestamp more than ``TOLERANCE_S``
away from its clock (a replayed request). Pure: no Django.

>>> sig = sign("s3cret", 1700000000, b'{"a":1}')
>>> verify("s3cret", "1700000000", sig, b'{"a":1}', now=1700000010)
True
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Healthstream-Timestamp"
SIGNATURE_HEADER = "X-Healthstream-Signature"
SCHEME = "v1"
TOLERANCE_S = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=<hex digest>`` for this body at this timestamp (seconds since the epoch)."""
    mac = hmac.new(secret.encode("utf-8"), f"{int(timestamp)}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, *,
           now: float | None = None, tolerance_s: int = TOLERANCE_S) -> bool:
    """True when the signature matches and the timestamp is within ``tolerance_s``."""
    if not timestamp or not signature:
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature.strip())
