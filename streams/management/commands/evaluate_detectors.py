"""``python manage.py evaluate_detectors``: replay recordings through the detectors and score them.

    python manage.py evaluate_detectors --data ../shared/data/stanford-covid19-phase1 \\
        --labels onsets.csv [--json] [--plots docs/charts]
    python manage.py evaluate_detectors --simulate 40 --days 30 [--json]
    python manage.py evaluate_detectors --data ... --labels onsets.csv \\
        --sweep illness_rhr.open_score=1,2,3,4 [--plots docs/charts]

Recordings are read by ``ingest.readers`` (any format it reads; folders are
searched for .zip, .csv and .xml files) and replayed in event time through the same
``PatientMonitor`` the Faust worker runs, with its production defaults. See
``streams.evaluate`` for the definitions. ``--sweep DETECTOR.PARAM=v1,v2,...``
replays once per value and prints detected against false alert-days per
person-month (with ``--plots``, the operating curve as a PNG).
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


def _labels(path: str | None) -> dict[str, pd.Timestamp | None]:
    """participant -> symptom onset; None: positive with the onset unknown (empty cell)."""
    if not path:
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"participant", "symptom_onset"} <= set(rows[0]):
        raise CommandError(f"{path}: needs the columns participant, symptom_onset")
    out: dict[str, pd.Timestamp | None] = {}
    for i, r in enumerate(rows, start=2):
        who, when = (r["participant"] or "").strip(), (r["symptom_onset"] or "").strip()
        if not who:
            raise CommandError(f"{path}, line {i}: participant is empty")
        try:
            out[who] = pd.Timestamp(when, tz="UTC") if when else None
        except ValueError as exc:
            raise CommandError(f"{path}, line {i}: symptom_onset {when!r} is not a date") from exc
    return out


def parse_sweep(spec: str) -> tuple[str, str, list]:
    """``DETECTOR.PARAM=v1,v2,...`` -> (detector, param, values); a clear error otherwise."""
    from streams.detectors import DETECTORS

    try:
        target, raw = spec.split("=", 1)
        det, param = target.split(".", 1)
    except ValueError:
        raise CommandError(f"--sweep {spec!r}: expected DETECTOR.PARAM=v1,v2,...") from None
    if det not in DETECTORS:
        raise CommandError(f"--sweep: unknown detector {det!r} (known: {', '.join(DETECTORS)})")
    if param not in DETECTORS[det]._param_names() or param in ("lateness_s", "tz_offset_min"):
        raise CommandError(f"--sweep: {det} has no parameter {param!r}")
    values: list = []
    for v in raw.split(","):
        v = v.strip()
        try:
            values.append(int(v) if v.lstrip("-").isdigit() else float(v))
        except ValueError:
            raise CommandError(f"--sweep: {v!r} is not a number") from None
    if not values:
        raise CommandError("--sweep: no values")
    return det, param, values


def monitor_params(detectors: tuple[str, ...], extra: dict | None = None) -> dict:
    """Monitor params: the production defaults, plus contributors' events when scored."""
    from streams.detectors.illness import CONTRIBUTORS

    params = {k: dict(v) for k, v in (extra or {}).items()}
    if set(detectors) & set(CONTRIBUTORS):
        params.setdefault("illness_rhr", {})["report_contributors"] = True
    return params


class Command(BaseCommand):
    help = "Replay recordings (or a simulated cohort) through the detectors and score the alerts."

    def add_arguments(self, parser):
        parser.add_argument("--data", nargs="+", default=[], help="recordings: files or folders")
        parser.add_argument("--labels", help="CSV with columns participant, symptom_onset "
                            "(empty onset: positive, date unknown; not listed: control)")
        parser.add_argument("--format", dest="fmt", default=None, help="reader format (default: detect)")
        parser.add_argument("--tz", default="UTC", help="time zone of local times in the files")
        parser.add_argument("--detectors", default="illness_rhr",
                            help="detectors whose alerts count as illness alerts "
                                 "(nightsignal_rhr, cusum_rhr: the episode's contributors alone)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.add_argument("--plots", help="write PNG charts (per participant; the sweep's curve) here")
        parser.add_argument("--simulate", type=int, default=0,
                            help="score on N simulated patients against the simulator's ground truth")
        parser.add_argument("--days", type=int, default=30, help="simulated days")
        parser.add_argument("--seed", type=int, default=7, help="simulator seed")
        parser.add_argument("--sweep", help="DETECTOR.PARAM=v1,v2,...: one replay per value")

    def handle(self, *args, **o):
        if not o["data"] and not o["simulate"]:
            raise CommandError("give --data PATH... or --simulate N")
        o["detectors_t"] = tuple(d for d in o["detectors"].split(",") if d)
        if o["sweep"]:
            out = self._sweep(o)
        else:
            out = {}
            if o["data"]:
                out = self._real(o, monitor_params(o["detectors_t"]), quiet=o["json"])
            if o["simulate"]:
                out["simulated"] = self._simulated(o, monitor_params(o["detectors_t"]), quiet=o["json"])
        if o["json"]:
            self.stdout.write(json.dumps(out, indent=2, default=str))

    # -- recordings with optional onsets -------------------------------------------------
    def _frames(self, o):
        if "_frames" not in o:
            from ingest.readers import load_frames

            skipped: list[str] = []
            files = _expand(o["data"], skipped)
            for note in skipped:
                self.stderr.write(f"skipped {note}")
            if not files:
                raise CommandError("no recordings found in --data")
            o["_frames"] = load_frames(files, fmt=o["fmt"], tz=o["tz"])
        return o["_frames"]

    def _real(self, o, params: dict, quiet: bool = False, plots: bool = True) -> dict:
        from streams.detectors import PatientMonitor
        from streams.evaluate import (
            Report,
            burden,
            fold,
            hr_days,
            plot_participant,
            score_participant,
        )
        from streams.replay import replay_frame

        labels = _labels(o["labels"])
        frames = self._frames(o)
        detectors = o["detectors_t"]
        tz = o["tz"]
        report = Report(detectors=detectors)
        alerts_by, days_by = {}, {}
        for pid in sorted(frames):
            frame = frames[pid]
            first = frame["time"].min()
            offset = int(first.tz_convert(tz).utcoffset().total_seconds() // 60)
            events, _ = replay_frame(frame, PatientMonitor(tz_offset_min=offset, params=params))
            last_ms = int(frame["time"].max().value // 1_000_000)
            alerts = fold(events, last_ms)
            alerts_by[pid] = alerts
            days_by[pid] = hr_days(frame, tz)
            report.participants.append(score_participant(
                pid, alerts, days_by[pid], first, frame["time"].max(), labels.get(pid), detectors,
                positive=pid in labels, tz=tz))
            if o["plots"] and plots:
                Path(o["plots"]).mkdir(parents=True, exist_ok=True)
                plot_participant(Path(o["plots"]) / f"{pid}.png", pid, frame,
                                 [a for a in alerts if a.detector in detectors], labels.get(pid))
        report.burden = burden(alerts_by, days_by, tz)
        if not quiet:
            self._print_real(report, alerts_by)
        return report.as_dict()

    def _print_burden(self, b: dict) -> None:
        w = self.stdout.write
        w(f"burden over {b['person_months']} person-months (days with heart rate / 30): "
          f"{b['non_info_episodes_per_person_month']} non-info alert episodes per person-month")
        w(f"  {'detector':<16} {'severity':<8} {'episodes':>8} {'episodes/pm':>11} {'alert-days/pm':>13}")
        for det, cells in b["by_detector"].items():
            for sev, c in cells.items():
                w(f"  {det:<16} {sev:<8} {c['episodes']:>8} {c['episodes_per_person_month']!s:>11} "
                  f"{c['alert_days_per_person_month']!s:>13}")

    def _print_real(self, report, alerts_by) -> None:
        w = self.stdout.write
        d = report.as_dict()
        w(f"illness detectors: {', '.join(report.detectors)}")
        w(f"{'participant':<12} {'group':<17} {'hr_days':>7} {'onset':<10} {'detected':<8} {'lead_days':>9} "
          f"{'false_alert_days/month (before/after)':>38}")
        for p in report.participants:
            det = "-" if p.detected is None else ("yes" if p.detected else "no")
            lead = "-" if p.lead_days is None else f"{p.lead_days:.0f}"
            split = (f"{p.false_alert_days_per_month:.2f} ({p.false_alert_days_per_month_before:.2f}"
                     f"/{p.false_alert_days_per_month_after:.2f})") if p.clear_days else "- (no heart rate)"
            w(f"{p.id:<12} {p.group:<17} {p.hr_days:>7} {p.onset or '-':<10} {det:<8} {lead:>9} {split:>38}")
        sens = report.sensitivity
        w(f"detected: {d['detected']}/{d['cases']} cases   false alert-days per person-month "
          f"(mean of {len(report.scored())} cases and controls): {d['false_alert_days_per_month']:.2f} "
          f"({d['false_alert_days_per_month_before']}/{d['false_alert_days_per_month_after']})"
          f"   sensitivity: {'-' if sens is None else f'{sens:.2f}'}")
        for p in d["positive_no_onset"]:
            w(f"positive, onset unknown (apart): {p['id']}: {p['alert_days']} alert-days in "
              f"{p['hr_days']} days with heart rate ({p['alert_days_per_month']:.2f} per month)")
        self._print_burden(report.burden)
        w("alerts (date = day raised, end = last day open):")
        from streams.evaluate import alert_row

        for pid, alerts in alerts_by.items():
            for a in alerts:
                r = alert_row(a)
                w(f"  {pid:<10} {r['date']}  {a.detector:<16} {a.severity:<6} to {r['end']}"
                  f"{'' if a.closed else '  (open at the end of the data)'}")

    # -- the simulator's ground truth ------------------------------------------------------
    def _cohort(self, o):
        if "_cohort" not in o:
            from datetime import UTC, datetime

            from ingest.simulator import simulate_cohort

            o["_cohort"] = simulate_cohort(o["simulate"], o["days"],
                                           start=datetime(2026, 1, 1, tzinfo=UTC), seed=o["seed"])
        return o["_cohort"]

    def _simulated(self, o, params: dict, quiet: bool = False) -> dict:
        from streams.detectors import PatientMonitor
        from streams.evaluate import fold, hr_days, score_simulated
        from streams.replay import replay_frame

        cohort = self._cohort(o)
        alerts, days = {}, {}
        for pid, frame in cohort.frames.items():
            last_ms = int(frame["time"].max().value // 1_000_000)
            alerts[pid] = fold(replay_frame(frame, PatientMonitor(params=params))[0], last_ms)
            days[pid] = hr_days(frame)
        result = score_simulated(cohort.episodes, alerts, days)
        if not quiet:
            w = self.stdout.write
            w(f"simulated cohort: {o['simulate']} patients, {o['days']} days, seed {o['seed']}")
            w(f"{'patient':>7} {'episode':<16} {'start':<17} {'detected':<8} {'alerts':>6} {'hours_to_alert':>14}  detectors")
            for r in result["episodes"]:
                h = "-" if r["hours_to_alert"] is None else f"{r['hours_to_alert']:.1f}"
                w(f"{r['patient']:>7} {r['kind']:<16} {r['start'][:16]:<17} "
                  f"{'yes' if r['detected'] else 'NO':<8} {r['alerts']:>6} {h:>14}  {','.join(r['detectors'])}")
            w(f"episodes detected: {result['detected']}/{result['episodes_total']}; with exactly one alert: "
              f"{result['episodes_with_exactly_one_alert']}; alerts on {result['controls']} controls "
              f"(nuisance only): {result['false_alerts_on_controls']} (non-info per patient-month: max "
              f"{result['control_non_info_alerts_per_patient_month_max']}); other alerts outside episodes: "
              f"{len(result['false_alerts']) - result['false_alerts_on_controls']}")
            for f in result["false_alerts"]:
                w(f"  false: patient {f['patient']} {f['date']} {f['detector']} {f['severity']}"
                  f"{' (control)' if f['control'] else ''}")
            self._print_burden(result["burden"])
        return result

    # -- the operating curve -----------------------------------------------------------------
    def _sweep(self, o) -> dict:
        from streams.evaluate import plot_curve

        det, param, values = parse_sweep(o["sweep"])
        rows = []
        for v in values:
            params = monitor_params(o["detectors_t"], {det: {param: v}})
            row: dict = {"value": v}
            if o["data"]:
                r = self._real(o, params, quiet=True, plots=False)
                row["real"] = {k: r[k] for k in ("detected", "cases", "false_alert_days_per_month",
                                                 "false_alert_days_per_month_before",
                                                 "false_alert_days_per_month_after")}
                row["real"]["non_info_episodes_per_person_month"] = r["burden"]["non_info_episodes_per_person_month"]
            if o["simulate"]:
                s = self._simulated(o, params, quiet=True)
                ill = [e for e in s["episodes"] if e["kind"] == "elevated_rhr"]
                row["simulated"] = {
                    "detected": sum(e["detected"] for e in ill), "episodes": len(ill),
                    "false_illness_alerts": s["false_illness_alerts"],
                    "false_alert_days_per_month": s["false_illness_alert_days_per_person_month"],
                    "non_info_episodes_per_person_month": s["burden"]["non_info_episodes_per_person_month"]}
            rows.append(row)
        out = {"sweep": f"{det}.{param}", "detectors": list(o["detectors_t"]), "points": rows}
        if not o["json"]:
            w = self.stdout.write
            w(f"operating curve: {det}.{param} (illness detectors: {', '.join(o['detectors_t'])})")
            w(f"{'value':>8} {'real detected':>13} {'false/pm (before/after)':>26} {'non-info/pm':>11}"
              f" {'sim detected':>12} {'sim false/pm':>12} {'sim non-info/pm':>15}")
            for r in rows:
                re, si = r.get("real"), r.get("simulated")
                w(f"{r['value']!s:>8} "
                  + (f"{re['detected']}/{re['cases']:<11} {re['false_alert_days_per_month']:>6.2f} "
                     f"({re['false_alert_days_per_month_before']}/{re['false_alert_days_per_month_after']})"
                     .ljust(41) + f"{re['non_info_episodes_per_person_month']!s:>11}" if re else " " * 53)
                  + (f" {si['detected']}/{si['episodes']:<10} {si['false_alert_days_per_month']:>12.2f}"
                     f" {si['non_info_episodes_per_person_month']!s:>15}" if si else ""))
        if o["plots"]:
            Path(o["plots"]).mkdir(parents=True, exist_ok=True)
            for kind, total in (("real", "cases"), ("simulated", "episodes")):
                pts = [(str(r["value"]), r[kind]["false_alert_days_per_month"],
                        r[kind]["detected"] / max(r[kind][total], 1)) for r in rows if kind in r]
                if pts:
                    path = Path(o["plots"]) / f"curve_{det}.{param}_{kind}.png"
                    plot_curve(path, f"{det}.{param} ({kind})", pts,
                               "false alert-days per person-month", "detected (fraction)")
                    out.setdefault("plots", []).append(str(path))
        return out

