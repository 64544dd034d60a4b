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

    def handle(self, *args, **opts):
        stack = Stack(var=Path(settings.VAR_DIR), api_port=opts["port"], patients=opts["patients"])
        raise SystemExit(stack.run())
