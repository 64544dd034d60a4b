"""``python manage.py run_alert_sink``: alerts.v1 -> the alerts table (idempotent upserts)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connections


class Command(BaseCommand):
    help = "Consume alerts.v1 and upsert alerts by (patient, detector, window_start)."

    def add_arguments(self, parser):
        parser.add_argument("--max-seconds", type=float, default=None,
                            help="stop after this many seconds (tests, benchmarks)")
        parser.add_argument("--group", default=None, help="consumer group id")

    def handle(self, *args, **options):
        from alerts.sink import GROUP_ID, AlertSink
        from lib import metrics

        metrics.serve_if_configured()  # /metrics on METRICS_PORT, when set

        connections.close_all()  # the sink uses its own psycopg connection
        sink = AlertSink(group_id=options["group"] or GROUP_ID)
        sink.install_signal_handlers()
        stats = sink.run(max_seconds=options["max_seconds"])
        self.stdout.write(f"alert sink: {stats.messages} messages, {stats.written} written, "
                          f"{stats.dead_letters} dead letters")
        if stats.abandoned:
            # stopped during an outage: those messages were not committed and are read again
            raise CommandError(f"stopped with {stats.abandoned} messages unwritten (they will be read again)")
