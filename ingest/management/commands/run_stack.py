"""python manage.py run_stack: start the whole stack on embedded defaults (make run)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from config.stack import Stack


class Command(BaseCommand):
    help = "Start every service and process of healthstream; Ctrl-C stops them all."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--patients", type=int, default=20)
        # Where the services started under var/ listen (tests pass free ports).
        parser.add_argument("--kafka-port", type=int, default=19092)
        parser.add_argument("--kafka-controller-port", type=int, default=19093)
        parser.add_argument("--redis-port", type=int, default=16379)
        parser.add_argument("--postgres-port", type=int, default=54329)

    def handle(self, *args, **opts):
        stack = Stack(var=Path(settings.VAR_DIR), api_port=opts["port"], patients=opts["patients"],
                      kafka_port=opts["kafka_port"], kafka_controller_port=opts["kafka_controller_port"],
                      redis_port=opts["redis_port"], postgres_port=opts["postgres_port"])
        raise SystemExit(stack.run())
