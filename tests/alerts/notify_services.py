"""Real receivers for the notification tests: an SMTP server process (aiosmtpd) that
keeps every message in a Maildir, and an HTTP server on localhost that checks each
webhook's HMAC signature with the secret it was given."""

from __future__ import annotations

import mailbox
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

from alerts.notify import signing
from tests.conftest import free_port, wait_port

SECRET = "test-webhook-secret-0123456789abcdef"


@dataclass
class SmtpSink:
    port: int
    maildir: Path
    proc: subprocess.Popen

    def messages(self) -> list[Message]:
        box = mailbox.Maildir(self.maildir, create=False)
        return [box.get_message(key) for key in box.keys()]

    def wait_for(self, n: int, timeout: float) -> list[Message]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.messages()
            if len(got) >= n:
                return got
            time.sleep(0.1)
        return self.messages()

    def clear(self) -> None:
        box = mailbox.Maildir(self.maildir, create=False)
        for key in list(box.keys()):
            box.remove(key)


def start_smtp_sink(folder: Path) -> SmtpSink:
    port = free_port()
    maildir = folder / "maildir"
    log = open(folder / "aiosmtpd.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                             "-c", "aiosmtpd.handlers.Mailbox", str(maildir)],
                            stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, 20)
    return SmtpSink(port, maildir, proc)


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes
    verified: bool

    def json(self) -> dict:
        return orjson.loads(self.body)


@dataclass
class WebhookReceiver:
    url: str
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    fail_with: int | None = None

    def wait_for(self, n: int, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.received) < n:
            time.sleep(0.05)
        return list(self.received)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_webhook_receiver(secret: str = SECRET) -> WebhookReceiver:
    holder: dict[str, WebhookReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = signing.verify(secret, self.headers.get(signing.TIMESTAMP_HEADER),
                                self.headers.get(signing.SIGNATURE_HEADER), body)
            receiver = holder["r"]
            receiver.received.append(Received(time.monotonic(), dict(self.headers), body, ok))
            status = receiver.fail_with or (204 if ok else 401)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver = WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/healthstream", server)
    holder["r"] = receiver
    return receiver
