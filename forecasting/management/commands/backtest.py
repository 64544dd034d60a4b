"""``python manage.py backtest --data PATH... [--json] [--plots DIR]``: every model,
rolling origin, on recordings in any format the importer reads, or on daily series
(``--daily``: the LifeSnaps daily export) split by person (``--part dev|test|all``).

With ``--part test`` the development part is backtested first with the same models and
the registry's rule (lowest 7-day MASE) picks the model marked ``"promoted": true`` on
the test part: the decision never sees the scores it reports."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from forecasting.features import TARGETS
from forecasting.forecasters import KINDS


class Command(BaseCommand):
    help = "Backtest every forecaster (rolling origin) on recordings and print the table."

    def add_arguments(self, parser):
        parser.add_argument("--data", nargs="+", default=[], help="files or folders of recordings")
        parser.add_argument("--daily", metavar="PATH", help="a LifeSnaps daily export (file or folder)")
        parser.add_argument("--part", default="all", choices=["dev", "test", "all"],
                            help="people of the development part, the test part (a fixed hash of the id), or all")
        parser.add_argument("--step", type=int, default=1, help="days between forecast origins")
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
        from forecasting.daily_files import promoted_name, read_lifesnaps_daily, split_by_person

        if not opts["data"] and not opts["daily"]:
            raise CommandError("give --data recordings or a --daily file")
        try:
            features = replay.features_from_files(opts["data"], tz=opts["tz"], out=self.stderr) \
                if opts["data"] else {}
            if opts["daily"]:
                features.update(read_lifesnaps_daily(opts["daily"]))
        except (FileNotFoundError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        everyone = features
        features = split_by_person(everyone, opts["part"])
        self.stderr.write(f"{opts['part']} part: {len(features)} of {len(everyone)} people")
        extra = None
        if "lstm" in models and opts["pretrain_sim"]:
            extra = replay.simulated_features(opts["pretrain_sim"], opts["sim_days"], progress=True)
        try:
            run = lambda feats: replay.run(  # noqa: E731
                feats, opts["metric"], models, extra_training=extra, progress=True, step=opts["step"],
                lstm={"epochs": opts["epochs"], "seed": opts["seed"]},
            )
            result, built = run(features)
            decided_on = result
            if opts["part"] == "test":
                self.stderr.write("development part (decides the promotion):")
                decided_on, _ = run(split_by_person(everyone, "dev"))
                self.stderr.write(decided_on.table())
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        winner = promoted_name({m: decided_on.scores(m)["mase"] for m in models})
        if opts["plots"]:
            from forecasting.features import make_histories
            from forecasting.plots import plot_backtest

            paths = plot_backtest(result, make_histories(features, opts["metric"]), opts["plots"])
            self.stderr.write(f"wrote {len(paths)} charts to {opts['plots']}")
        data = result.to_json()
        for m in data["models"]:
            m["promoted"] = m["name"] == winner
        data["part"] = opts["part"]
        data["promotion_decided_on"] = "dev" if opts["part"] == "test" else opts["part"]
        if opts["json"]:
            self.stderr.write(result.table())  # the table too, for a reader of the log
            self.stdout.write(json.dumps(data, indent=2))
        else:
            self.stdout.write(result.table())
            self.stdout.write(f"promoted by the registry's rule (decided on the {data['promotion_decided_on']} part): {winner}")
