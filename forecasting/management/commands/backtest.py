"""``python manage.py backtest --data PATH... [--json] [--plots DIR]``: every model,
rolling origin, on recordings in any format the importer reads."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from forecasting.features import TARGETS
from forecasting.forecasters import KINDS


class Command(BaseCommand):
    help = "Backtest every forecaster (rolling origin) on recordings and print the table."

    def add_arguments(self, parser):
        parser.add_argument("--data", nargs="+", required=True, help="files or folders of recordings")
        parser.add_argument("--metric", default="resting_hr", choices=list(TARGETS))
        parser.add_argument("--models", default=",".join(KINDS), help=f"comma list of {', '.join(KINDS)}")
        parser.add_argument("--tz", default="UTC", help="zone of local times without an offset")
        parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
        parser.add_argument("--plots", metavar="DIR", help="write PNG charts of forecast against actual")
        parser.add_argument("--pretrain-sim", type=int, default=100, metavar="N",
                            help="also train the LSTM on N simulated patients (0: real data only)")
        parser.add_argument("--sim-days", type=int, default=180)
        parser.add_argument("--epochs", type=int, default=20)
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, **opts):
        from forecasting import replay

        models = tuple(m.strip() for m in opts["models"].split(",") if m.strip())
        unknown = set(models) - set(KINDS)
        if unknown:
            raise CommandError(f"unknown models {', '.join(sorted(unknown))}; use {', '.join(KINDS)}")
        try:
            features = replay.features_from_files(opts["data"], tz=opts["tz"], out=self.stderr)
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from exc
        extra = None
        if "lstm" in models and opts["pretrain_sim"]:
            extra = replay.simulated_features(opts["pretrain_sim"], opts["sim_days"], progress=True)
        try:
            result, built = replay.run(
                features, opts["metric"], models, extra_training=extra, progress=True,
                lstm={"epochs": opts["epochs"], "seed": opts["seed"]},
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if opts["plots"]:
            from forecasting.features import make_histories
            from forecasting.plots import plot_backtest

            paths = plot_backtest(result, make_histories(features, opts["metric"]), opts["plots"])
            self.stderr.write(f"wrote {len(paths)} charts to {opts['plots']}")
        if opts["json"]:
            self.stdout.write(json.dumps(result.to_json(), indent=2))
        else:
            self.stdout.write(result.table())
