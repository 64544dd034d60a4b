"""python manage.py run_ingest_sink: the Kafka samples.v1 -> database sink."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ingest.sink import GROUP_ID, Sink
from lib import metrics


class Command(BaseCommand):
    help = "Consume samples.v1 and COPY the samples into the database (stops cleanly on SIGTERM)."

    def add_arguments(self, parser):
        parser.add_argument("--group", default=GROUP_ID)
        parser.add_argument("--max-seconds", type=float, default=None)

    def handle(self, *args, **opts):
        metrics.serve_if_configured()  # /metrics on METRICS_PORT, when set
        sink = Sink(group_id=opts["group"])
        sink.install_signal_handlers()
        stats = sink.run(max_seconds=opts["max_seconds"])
        self.stdout.write(
            f"sink stopped: {stats.messages} messages, {stats.stored_batches} batches stored, "
            f"{stats.duplicate_batches} duplicate, {stats.samples} samples, {stats.dead_letters} dead letters"
        )
        if stats.abandoned:
            # stopped during an outage: those messages were not committed and are read again
            raise CommandError(f"stopped with {stats.abandoned} messages unwritten (they will be read again)")
