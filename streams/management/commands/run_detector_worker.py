"""``python manage.py run_detector_worker``: the Faust worker of the anomaly detectors.

Stops cleanly on SIGTERM or SIGINT (Faust's worker handles both: it finishes the
current batch, commits and leaves the consumer group).
"""

from __future__ import annotations

import logging
import time

from django.core.management.base import BaseCommand
from django.db import connections

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the Faust worker that runs the anomaly detectors over samples.v1."

    def add_arguments(self, parser):
        parser.add_argument("--loglevel", default="WARNING", help="Faust's log level")

    def handle(self, *args, **options):
        from django.conf import settings

        if settings.DETECTOR_EVENT_LOOP == "uvloop":
            import mode.loop

            mode.loop.use("uvloop")  # before Faust or the worker makes a loop
        from faust.worker import Worker

        from lib import kafka, metrics
        from streams.app import create_app

        connections.close_all()  # the worker never uses the ORM
        metrics.serve_if_configured()  # /metrics on METRICS_PORT, when set
        app = create_app()
        # The state table's changelog exists before the worker joins its group: Faust
        # would create it only after the first assignment, which then leaves it out
        # ("Ignoring missing topic"), and until the group leader's metadata refreshed
        # (minutes) no rebalance gave a worker the changelog of the partitions it took
        # over, so it judged them on an empty or stale state.
        kafka.ensure_topics(compacted=[app.tables["state"].changelog_topic.get_topic_name()])
        # The overrides, time zones and quiet periods are read before the worker joins
        # the group: a take judged before that read would use the defaults, in UTC, and
        # send alerts a patient had quieted (a restart with a backlog judges at once).
        read_thresholds_first(app.detector_thresholds)
        worker = Worker(app, loglevel=options["loglevel"], quiet=True, redirect_stdouts=False,
                        override_logging=False)
        try:
            worker.execute_from_commandline()
        finally:
            s = app.detector_processor.stats
            log.info("detector worker stopped: %d messages, %d samples, %d alerts, "
                     "%d re-delivered skipped, %d repeated batches dropped, %d unreadable", s.messages,
                     s.samples, s.alerts, s.skipped_redelivered, s.skipped_repeated_batches, s.unreadable)


def read_thresholds_first(thresholds, retry_s: float = 2.0) -> None:
    """The first read of the detectors' overrides, time zones and quiet periods, retried
    while PostgreSQL does not answer: the worker takes no partition before it."""
    import psycopg

    while True:
        try:
            thresholds.load()
            return
        except psycopg.Error as exc:
            log.warning("waiting for PostgreSQL to read the detector thresholds (%s)", type(exc).__name__)
            time.sleep(retry_s)
