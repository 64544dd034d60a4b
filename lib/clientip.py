"""The client's address: REMOTE_ADDR, unless that is one of the TRUSTED_PROXIES (addresses
or networks); then the nearest X-Forwarded-For hop that is not a trusted proxy. A
client-supplied X-Forwarded-For is never believed otherwise (the sign-in lock-out, the
anonymous rate limit and the audit log all use this)."""

from __future__ import annotations

import functools
import ipaddress

from django.conf import settings


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request) -> str:
    """REMOTE_ADDR, or behind TRUSTED_PROXIES the nearest untrusted X-Forwarded-For hop."""
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not networks or not _trusted(remote, networks):
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return "invalid"  # a proxy passed something that is no address: one shared bucket
    return remote
