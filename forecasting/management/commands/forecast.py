"""``python manage.py forecast``: the daily forecasts, on demand."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from forecasting.features import TARGETS


class Command(BaseCommand):
    help = "Forecast the next 14 days for every active patient with each promoted model."

    def add_arguments(self, parser):
        parser.add_argument("--metric", action="append", choices=list(TARGETS),
                            help="a metric (repeatable; default: FORECAST_METRICS)")
        parser.add_argument("--date", type=date.fromisoformat,
                            help="the last day of data to use (default: yesterday, UTC)")

    def handle(self, *args, **opts):
        from forecasting import service

        total = 0
        for metric in opts["metric"] or settings.FORECAST_METRICS:
            try:
                n = service.forecast_metric(metric, end_day=opts["date"], progress=True)
            except service.NoData as exc:
                self.stdout.write(f"{metric}: skipped ({exc})")
                continue
            total += n
            self.stdout.write(f"{metric}: {n} forecast days written")
        if total == 0:
            raise CommandError("no forecasts written: train first (manage.py train_forecasters)")
