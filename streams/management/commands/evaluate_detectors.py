"""``python manage.py evaluate_detectors``: replay recordings through the detectors and score them.

    python manage.py evaluate_detectors --data ../shared/data/stanford-covid19-phase1 \\
        --labels onsets.csv [--json] [--plots docs/charts]
    python manage.py evaluate_detectors --simulate 40 --days 30 [--json]

Recordings are read by ``ingest.readers`` (any format it reads; folders are
searched for .zip, .csv and .xml files) and replayed in event time through the same
``PatientMonitor`` the Faust worker runs. See ``streams.evaluate`` for the scores.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
from django.core.management.base import BaseCommand, CommandError


def _expand(paths: list[str], skipped: list[str]) -> list[Path]:
    """Files as given; folders searched for files whose format the readers recognise."""
    from ingest.readers import ReaderError, detect_format

    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.suffix.lower() not in {".zip", ".csv", ".xml"} or "licen" in f.name.lower():
                    continue
                try:
                    detect_format(f)
                except ReaderError as exc:
                    skipped.append(str(exc).split(";")[0])
                    continue
                out.append(f)
        elif p.exists():
            out.append(p)
        else:
            raise CommandError(f"{raw}: no such file or folder")
    return out


def _labels(path: str | None) -> dict[str, pd.Timestamp]:
    if not path:
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"participant", "symptom_onset"} <= set(rows[0]):
        raise CommandError(f"{path}: needs the columns participant, symptom_onset")
    out = {}
    for r in rows:
        if r["symptom_onset"].strip():
            out[r["participant"].strip()] = pd.Timestamp(r["symptom_onset"].strip(), tz="UTC")
    return out


class Command(BaseCommand):
    help = "Replay recordings (or a simulated cohort) through the detectors and score the alerts."

    def add_arguments(self, parser):
        parser.add_argument("--data", nargs="+", default=[], help="recordings: files or folders")
        parser.add_argument("--labels", help="CSV with columns participant, symptom_onset")
        parser.add_argument("--format", dest="fmt", default=None, help="reader format (default: detect)")
        parser.add_argument("--tz", default="UTC", help="time zone of local times in the files")
        parser.add_argument("--detectors", default=",".join(("nightsignal_rhr", "cusum_rhr")),
                            help="detectors whose alerts count as illness alerts")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.add_argument("--plots", help="write a PNG chart per participant into this folder")
        parser.add_argument("--simulate", type=int, default=0,
                            help="score on N simulated patients against the simulator's ground truth")
        parser.add_argument("--days", type=int, default=30, help="simulated days")
        parser.add_argument("--seed", type=int, default=7, help="simulator seed")

    def handle(self, *args, **o):
        if not o["data"] and not o["simulate"]:
            raise CommandError("give --data PATH... or --simulate N")
        out: dict = {}
        if o["data"]:
            out = self._real(o)
        if o["simulate"]:
            out["simulated"] = self._simulated(o)
        if o["json"]:
            self.stdout.write(json.dumps(out, indent=2, default=str))

    # -- recordings with optional onsets -------------------------------------------------
    def _real(self, o) -> dict:
        from ingest.readers import load_frames
        from streams.evaluate import Report, fold, plot_participant, score_participant
        from streams.replay import replay_frame

        labels = _labels(o["labels"])
        skipped: list[str] = []
        files = _expand(o["data"], skipped)
        for note in skipped:
            self.stderr.write(f"skipped {note}")
        if not files:
            raise CommandError("no recordings found in --data")
        frames = load_frames(files, fmt=o["fmt"], tz=o["tz"])
        detectors = tuple(d for d in o["detectors"].split(",") if d)
        report = Report(detectors=detectors)
        alerts_by = {}
        for pid in sorted(frames):
            frame = frames[pid]
            events, _ = replay_frame(frame)
            alerts = fold(events)
            alerts_by[pid] = alerts
            report.participants.append(score_participant(
                pid, alerts, frame["time"].min(), frame["time"].max(), labels.get(pid), detectors))
            if o["plots"]:
                Path(o["plots"]).mkdir(parents=True, exist_ok=True)
                plot_participant(Path(o["plots"]) / f"{pid}.png", pid, frame,
                                 [a for a in alerts if a.detector in detectors], labels.get(pid))
        if not o["json"]:
            self._print_real(report, alerts_by)
        return report.as_dict()

    def _print_real(self, report, alerts_by) -> None:
        w = self.stdout.write
        w(f"illness detectors: {', '.join(report.detectors)}")
        w(f"{'participant':<12} {'days':>5} {'onset':<10} {'detected':<8} {'lead_days':>9} "
          f"{'false_alert_days/month':>22}")
        for p in report.participants:
            det = "-" if p.detected is None else ("yes" if p.detected else "no")
            lead = "-" if p.lead_days is None else f"{p.lead_days:.1f}"
            w(f"{p.id:<12} {p.days:>5.0f} {p.onset or '-':<10} {det:<8} {lead:>9} "
              f"{p.false_alert_days_per_month:>22.2f}")
        sens = report.sensitivity
        w(f"sensitivity: {'-' if sens is None else f'{sens:.2f}'}   false alert-days per "
          f"person-month: {report.false_alert_days_per_month:.2f}")
        w("alerts (all detectors; date = when raised):")
        for pid, alerts in alerts_by.items():
            for a in alerts:
                w(f"  {pid:<10} {a.raised.date()}  {a.detector:<16} {a.severity:<6} "
                  f"{a.start:%Y-%m-%d %H:%M} .. {a.end:%Y-%m-%d %H:%M}"
                  f"{'' if a.closed else '  (open)'}")

    # -- the simulator's ground truth ------------------------------------------------------
    def _simulated(self, o) -> dict:
        from datetime import UTC, datetime

        from ingest.simulator import simulate_cohort
        from streams.evaluate import fold, score_simulated
        from streams.replay import replay_frame

        cohort = simulate_cohort(o["simulate"], o["days"], start=datetime(2026, 1, 1, tzinfo=UTC),
                                 seed=o["seed"])
        alerts = {pid: fold(replay_frame(frame)[0]) for pid, frame in cohort.frames.items()}
        result = score_simulated(cohort.episodes, alerts)
        if not o["json"]:
            w = self.stdout.write
            w(f"simulated cohort: {o['simulate']} patients, {o['days']} days, seed {o['seed']}")
            w(f"{'patient':>7} {'episode':<16} {'start':<17} {'detected':<8} {'hours_to_alert':>14}  detectors")
            for r in result["episodes"]:
                h = "-" if r["hours_to_alert"] is None else f"{r['hours_to_alert']:.1f}"
                w(f"{r['patient']:>7} {r['kind']:<16} {r['start'][:16]:<17} "
                  f"{'yes' if r['detected'] else 'NO':<8} {h:>14}  {','.join(r['detectors'])}")
            w(f"episodes detected: {result['detected']}/{result['episodes_total']}; "
              f"alerts on {result['controls']} controls: {result['false_alerts_on_controls']}; "
              f"other alerts outside episodes: {len(result['false_alerts']) - result['false_alerts_on_controls']}")
            for f in result["false_alerts"]:
                w(f"  false: patient {f['patient']} {f['date']} {f['detector']} {f['severity']}"
                  f"{' (control)' if f['control'] else ''}")
        return result
