"""A webhook receiver for local runs (``make run``): it checks each request's signature
and prints one line per delivery with ids only (event, delivery, alert, patient), so a
developer sees the signed webhook arrive. Not for production: a clinic points its
endpoint at its own paging system."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from alerts.notify import signing

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20


def make_server(host: str, port: int, secret: str, say: Callable[[str], None]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413)
                return
            body = self.rfile.read(length)
            if not signing.verify(secret, self.headers.get(signing.TIMESTAMP_HEADER),
                                  self.headers.get(signing.SIGNATURE_HEADER), body):
                say("refused a request with a bad or stale signature")
                self._answer(401)
                return
            try:
                event = orjson.loads(body)
                alert = event.get("alert", {})
                say(f"verified {event.get('event')} delivery {event.get('delivery')} "
                    f"alert {alert.get('id')} patient {alert.get('patient')} severity {alert.get('severity')}")
            except (orjson.JSONDecodeError, AttributeError):
                say("verified a delivery that is not a JSON object")
            self._answer(204)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)
