"""Where a webhook may point: public addresses only (no SSRF into the clinic's network).

A webhook URL is typed by a person, so a careless or hostile one could make the
notification worker POST to the database's admin port, a cloud metadata service
(169.254.169.254) or anything else only the server can reach. Two checks stop that:

* at configuration (``check_url``, the model field's validator): the URL's host, a
  literal address or a name resolved then, must be a public address;
* at every delivery (``session``): the connection itself resolves the name, checks
  every address it got, and connects to a checked address. A name that was public
  when configured and now resolves to 127.0.0.1 (DNS rebinding) is refused, and there
  is no gap between checking and connecting for a second lookup to exploit.

``NOTIFY_WEBHOOK_ALLOW_PRIVATE=1`` turns both checks off, for a receiver on the same
machine or network (``make run``'s local receiver, the tests). Redirects are never
followed (``allow_redirects=False`` where the request is made).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as u3connection

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
ALLOW_HINT = "set NOTIFY_WEBHOOK_ALLOW_PRIVATE=1 only for a receiver on a trusted network"


class TargetRefused(Exception):
    """The webhook's host is not a public address (the message says which kind it is)."""


def address_kind(ip: Address) -> str:
    """Why ``ip`` is not a public address ("" when it is one)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return address_kind(embedded)
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return "" if ip.is_global else "non-public"


def check_address(ip_text: str, host: str) -> None:
    """Raise ``TargetRefused`` unless ``ip_text`` is a public address."""
    ip = ipaddress.ip_address(ip_text.split("%", 1)[0])
    kind = address_kind(ip)
    if kind:
        where = f"is {ip}" if ip_text == host else f"resolves to {ip}"
        raise TargetRefused(f"the webhook host {where}, a {kind} address: refused ({ALLOW_HINT})")


def resolve(host: str, port: int) -> list[tuple[int, str]]:
    """The (family, address) pairs ``host`` resolves to; ``TargetRefused`` if none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"the webhook host does not resolve ({exc})") from None
    found: list[tuple[int, str]] = [(int(family), str(sockaddr[0])) for family, _, _, _, sockaddr in infos]
    if not found:
        raise TargetRefused("the webhook host does not resolve (no addresses)")
    return found


def public_addresses(host: str, port: int) -> list[tuple[int, str]]:
    """Resolve ``host`` and return its addresses, all of them public; raise
    ``TargetRefused`` if any is not (a name that answers with one public and one private
    address is refused: a resolver may hand out either)."""
    found = resolve(host, port)
    for _, ip in found:
        check_address(ip, host)
    return found


def check_url(url: str) -> None:
    """The configuration-time check: the host of ``url`` must be public (skipped when
    ``NOTIFY_WEBHOOK_ALLOW_PRIVATE`` is on)."""
    if settings.NOTIFY_WEBHOOK_ALLOW_PRIVATE:
        return
    parts = urlsplit(url)
    if not parts.hostname:
        raise TargetRefused("the webhook URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("the webhook URL's port is not a number from 1 to 65535") from None
    public_addresses(parts.hostname, port)


class _CheckedConnectionMixin:
    """A urllib3 connection that connects only to a checked public address of its host.
    The Host header and, for HTTPS, SNI and certificate checks keep the name."""

    _dns_host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        last: OSError | None = None
        for _, ip in public_addresses(self._dns_host, self.port):
            try:
                return u3connection.create_connection((ip, self.port), self.timeout,
                                                      source_address=self.source_address,
                                                      socket_options=self.socket_options)
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"connect timeout ({self.timeout})") from exc
            except OSError as exc:
                last = exc
        raise NewConnectionError(self, f"failed to connect: {last}")  # type: ignore[arg-type]


class _CheckedHTTPConnection(_CheckedConnectionMixin, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnectionMixin, HTTPSConnection):
    pass


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


def session() -> requests.Session:
    """A requests session for one delivery: connections go only to checked public
    addresses, unless ``NOTIFY_WEBHOOK_ALLOW_PRIVATE`` is on. While checking, proxies
    from the environment (``HTTPS_PROXY``) are not used: the check must see the target."""
    s = requests.Session()
    if not settings.NOTIFY_WEBHOOK_ALLOW_PRIVATE:
        s.trust_env = False  # a proxy would resolve the name itself, past the check
        adapter = _CheckedAdapter()
        s.mount("http://", adapter)
        s.mount("https://", adapter)
    return s
