"""``python manage.py train_forecasters``: the nightly retraining, on demand."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from forecasting.features import TARGETS


class Command(BaseCommand):
    help = "Train a candidate LSTM per metric on the rollups; promote it only if it beats the current model."

    def add_arguments(self, parser):
        parser.add_argument("--metric", action="append", choices=list(TARGETS),
                            help="a metric to train (repeatable; default: FORECAST_METRICS)")
        parser.add_argument("--epochs", type=int, help="LSTM epochs (default FORECAST_LSTM_EPOCHS)")
        parser.add_argument("--days", type=int, help="days of history (default FORECAST_TRAIN_DAYS)")

    def handle(self, *args, **opts):
        from forecasting import service

        lstm = {"epochs": opts["epochs"], "verbose": 2} if opts["epochs"] else {"verbose": 2}
        trained = 0
        for metric in opts["metric"] or settings.FORECAST_METRICS:
            self.stdout.write(f"training {metric} ...")
            try:
                out = service.train_metric(metric, days=opts["days"], lstm=lstm, progress=True)
            except service.NoData as exc:
                self.stdout.write(f"  skipped: {exc}")
                continue
            trained += 1
            state = "promoted" if out.promoted else "kept the current model"
            if out.reused:
                state += " (already trained tonight)"
            self.stdout.write(f"  {out.version.label}: {state}")
            for name, s in out.scores.items():
                mase = "-" if s.get("mase") is None else f"{s['mase']:.3f}"
                self.stdout.write(f"    {name:<16} MASE@7 {mase}  n={s.get('n')}")
        if trained == 0:
            raise CommandError("no metric had enough data to train")
