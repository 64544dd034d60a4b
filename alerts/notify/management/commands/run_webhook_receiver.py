"""``python manage.py run_webhook_receiver --port 8025 --secret-file var/webhook-secret``:
the local signed-webhook receiver (see alerts/notify/receiver.py)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from alerts.notify.receiver import make_server


class Command(BaseCommand):
    help = "Receive the stack's signed webhooks on localhost and print one line per delivery."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8025)
        parser.add_argument("--secret-file", required=True, type=Path,
                            help="a file holding the endpoint's secret (never printed)")

    def handle(self, *args, **opts):
        try:
            secret = opts["secret_file"].read_text().strip()
        except OSError as exc:
            raise CommandError(f"cannot read the secret file: {exc.strerror}") from None
        if not secret:
            raise CommandError("the secret file is empty")
        server = make_server(opts["host"], opts["port"], secret,
                             lambda line: self.stdout.write(line, ending="\n") or self.stdout.flush())
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
        self.stdout.write(f"webhook receiver on http://{opts['host']}:{opts['port']}/")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
