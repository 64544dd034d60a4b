"""Scoring the detectors on recordings (real data with symptom onsets) and on the simulator.

The replay is ``streams.replay.replay_frame``: the worker's own ``PatientMonitor``
with its production defaults, in event time. Definitions (issue 10; JSON fields
kept):

* an *alert* is one episode as a care team sees it in the queue: (detector, window
  start). ``date``: the patient-local day it was raised; ``end``: the last day it was
  open, as it would be live (the day of its close, or the last day of data when it
  is still open at the end). ``info`` severity is only for data-quality items.
* *alert-days* of an alert: the local calendar days from ``date`` to ``end`` (each
  interval it was open, when it closed and re-opened), counting only days with
  heart-rate data.
* *detected*: an illness alert-day in [onset - 21 d, onset + 7 d]; *lead time*:
  onset minus the first such day.
* *false alert-days per person-month*: a person's illness alert-days outside
  [onset - 21 d, onset + 21 d], divided by their days with heart-rate data outside
  that window, times 30 (a control: all of their days). The report gives the mean
  over cases and controls, and the same split into before and after the window (a
  control's days all count as before).
* a positive person with no onset date (an empty ``symptom_onset``) is neither a case
  nor a control: reported apart, out of the means. A participant not in the labels
  is a control.
* ``burden``: alert episodes and alert-days per person-month (days with heart-rate
  data / 30), by detector and severity, over everyone replayed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from streams.detectors import Event
from streams.detectors.illness import CONTRIBUTORS

ILLNESS_DETECTORS = ("illness_rhr",)
EPISODE_DETECTORS = {
    "high_hr_at_rest": ("hr_high_at_rest",),
    "elevated_rhr": ILLNESS_DETECTORS,
    "short_sleep": ("sleep_debt",),
    "wear_gap": ("wear_gap",),
}
DAY = pd.Timedelta(days=1)
SEVERITIES = ("info", "yellow", "red")


@dataclass
class Alert:
    """One queue item in its final state; ``intervals``: (open, close) event times, ms."""

    detector: str
    severity: str
    start_ms: int
    raised_ms: int
    intervals: list[list[int]]
    closed: bool

    def days(self, tz: str = "UTC") -> set[date]:
        out: set[date] = set()
        for a, b in self.intervals:
            d0, d1 = local_day(a, tz), local_day(b, tz)
            out.update(d0 + timedelta(days=i) for i in range((d1 - d0).days + 1))
        return out

    @property
    def end_ms(self) -> int:
        return self.intervals[-1][1]


def local_day(ms: int, tz: str = "UTC") -> date:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").tz_convert(tz).date()


def fold(events: Iterable[Event], last_ms: int) -> list[Alert]:
    """Events -> one Alert per episode; an episode still open ends at ``last_ms`` (the data's end)."""
    out: dict[tuple[str, int], Alert] = {}
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    for e in sorted(events, key=lambda e: (e.time, e.seq)):
        key = (e.detector, e.window_start)
        a = out.get(key)
        if a is None:
            a = out[key] = Alert(e.detector, e.severity, e.window_start, e.time, [[e.time, -1]], False)
        elif a.closed and e.state != "closed":
            a.intervals.append([e.time, -1])  # re-opened
        if rank[e.severity] > rank[a.severity]:
            a.severity = e.severity
        if e.state == "closed" and not a.closed:
            a.intervals[-1][1] = e.time
        a.closed = e.state == "closed"
    for a in out.values():
        if a.intervals[-1][1] < 0:
            a.intervals[-1][1] = max(last_ms, a.intervals[-1][0])
    return sorted(out.values(), key=lambda a: (a.raised_ms, a.detector))


def hr_days(frame: pd.DataFrame, tz: str = "UTC") -> set[date]:
    """The local days with heart-rate data."""
    t = frame.loc[frame["metric"] == "heart_rate", "time"]
    if t.empty:
        return set()
    return set(t.dt.tz_convert(tz).dt.date.unique().tolist())


def _iso(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


@dataclass
class ParticipantResult:
    id: str
    days: float
    alerts: list[dict]
    group: str = "control"  # case, control, positive_no_onset
    onset: str | None = None
    detected: bool | None = None
    lead_days: float | None = None
    hr_days: int = 0
    alert_days: int = 0
    false_alert_days: int = 0
    false_alert_days_before: int = 0
    false_alert_days_after: int = 0
    clear_days: int = 0  # days with heart-rate data outside [onset - 21, onset + 21]
    false_alert_days_per_month: float = 0.0
    false_alert_days_per_month_before: float = 0.0
    false_alert_days_per_month_after: float = 0.0


def _mean(xs: list[float]) -> float | None:
    return None if not xs else round(float(np.mean(xs)), 3)


@dataclass
class Report:
    participants: list[ParticipantResult] = field(default_factory=list)
    detectors: tuple[str, ...] = ILLNESS_DETECTORS
    burden: dict = field(default_factory=dict)

    def scored(self) -> list[ParticipantResult]:
        """Cases and controls with heart-rate days outside the onset window."""
        return [p for p in self.participants if p.group != "positive_no_onset" and p.clear_days > 0]

    @property
    def cases(self) -> list[ParticipantResult]:
        return [p for p in self.participants if p.group == "case"]

    @property
    def sensitivity(self) -> float | None:
        cases = self.cases
        return None if not cases else sum(bool(p.detected) for p in cases) / len(cases)

    @property
    def false_alert_days_per_month(self) -> float:
        return _mean([p.false_alert_days_per_month for p in self.scored()]) or 0.0

    def as_dict(self) -> dict:
        scored = self.scored()
        apart = [p for p in self.participants if p.group == "positive_no_onset"]
        return {
            "detectors": list(self.detectors),
            "participants": [asdict(p) for p in self.participants],
            "sensitivity": self.sensitivity,
            "detected": sum(bool(p.detected) for p in self.cases),
            "cases": len(self.cases),
            "controls": sum(p.group == "control" for p in scored),
            "false_alert_days_per_month": self.false_alert_days_per_month,
            "false_alert_days_per_month_before": _mean([p.false_alert_days_per_month_before for p in scored]),
            "false_alert_days_per_month_after": _mean([p.false_alert_days_per_month_after for p in scored]),
            "positive_no_onset": [{"id": p.id, "hr_days": p.hr_days, "alert_days": p.alert_days,
                                   "alert_days_per_month": p.false_alert_days_per_month} for p in apart],
            "burden": self.burden,
        }


def alert_row(a: Alert, tz: str = "UTC") -> dict:
    return {"detector": a.detector, "severity": a.severity, "date": str(local_day(a.raised_ms, tz)),
            "start": _iso(a.start_ms), "end": str(local_day(a.end_ms, tz)), "closed": a.closed,
            "open_days": round((a.end_ms - a.raised_ms) / 86_400_000, 1)}


def score_participant(pid: str, alerts: list[Alert], with_hr: set[date], first: pd.Timestamp,
                      last: pd.Timestamp, onset: pd.Timestamp | None, detectors: Iterable[str],
                      positive: bool = False, tz: str = "UTC") -> ParticipantResult:
    """One person's score (see the module docstring for the definitions)."""
    detectors = set(detectors)
    mine = [a for a in alerts if a.detector in detectors]
    res = ParticipantResult(id=str(pid), days=round((last - first) / DAY, 1),
                            alerts=[alert_row(a, tz) for a in alerts], hr_days=len(with_hr))
    alert_days = set().union(*(a.days(tz) for a in mine)) & with_hr if mine else set()
    res.alert_days = len(alert_days)
    if onset is not None:
        res.group = "case"
        o = onset.date()
        res.onset = str(o)
        hits = sorted(d for d in alert_days if o - timedelta(days=21) <= d <= o + timedelta(days=7))
        res.detected = bool(hits)
        if hits:
            res.lead_days = float((o - hits[0]).days)
        lo, hi = o - timedelta(days=21), o + timedelta(days=21)
        clear = {d for d in with_hr if d < lo or d > hi}
        before = {d for d in alert_days if d < lo}
        after = {d for d in alert_days if d > hi}
    else:
        res.group = "positive_no_onset" if positive else "control"
        clear = set(with_hr)
        before, after = set(alert_days), set()
    res.clear_days = len(clear)
    res.false_alert_days_before, res.false_alert_days_after = len(before), len(after)
    res.false_alert_days = len(before) + len(after)
    if clear:
        k = 30.0 / len(clear)
        res.false_alert_days_per_month = round(res.false_alert_days * k, 3)
        res.false_alert_days_per_month_before = round(len(before) * k, 3)
        res.false_alert_days_per_month_after = round(len(after) * k, 3)
    return res


def burden(alerts_by: Mapping[object, list[Alert]], hr_days_by: Mapping[object, set],
           tz: str = "UTC") -> dict:
    """Queue items and their alert-days per person-month, by detector and severity.

    Contributors to the illness episode (NightSignal, CuSum) are not queue items and
    are left out when the illness episode itself is there.
    """
    months = sum(len(d) for d in hr_days_by.values()) / 30.0
    seen = {a.detector for lst in alerts_by.values() for a in lst}
    skip = set(CONTRIBUTORS) if "illness_rhr" in seen else set()
    table: dict[str, dict[str, list[int]]] = {}
    non_info = 0
    for pid, lst in alerts_by.items():
        days = hr_days_by.get(pid, set())
        for a in lst:
            if a.detector in skip:
                continue
            cell = table.setdefault(a.detector, {}).setdefault(a.severity, [0, 0])
            cell[0] += 1
            cell[1] += len(a.days(tz) & days)
            non_info += a.severity != "info"
    per = (lambda x: round(x / months, 3)) if months else (lambda x: None)
    return {
        "person_months": round(months, 2),
        "non_info_episodes_per_person_month": per(non_info),
        "by_detector": {det: {sev: {"episodes": c[0], "episodes_per_person_month": per(c[0]),
                                    "alert_days_per_person_month": per(c[1])}
                              for sev, c in sorted(cells.items())}
                        for det, cells in sorted(table.items())},
    }


def score_simulated(episodes: pd.DataFrame, alerts: dict[int, list[Alert]],
                    hr_days_by: Mapping[int, set] | None = None,
                    slack: pd.Timedelta = DAY) -> dict:
    """Ground truth of the simulator: each episode's matching alerts, and the rest.

    An episode should raise exactly one alert; patients without an episode (nuisance
    only: late nights, alcohol, travel, noise, heavy exercise) should raise at most one
    non-info alert per patient-month.
    """
    hr_days_by = hr_days_by or {}
    rows, matched = [], set()
    for ep in episodes.itertuples():
        wanted = EPISODE_DETECTORS[ep.kind]
        s_ms, e_ms = ep.start.value // 1_000_000, ep.end.value // 1_000_000
        sl = slack.value // 1_000_000
        # an alert matches when one of the intervals it was open overlaps the episode (+- slack)
        opens = [(o, a) for a in alerts.get(ep.patient, []) if a.detector in wanted
                 for o, c in a.intervals if c >= s_ms - sl and o <= e_ms + sl]
        hits = list({id(a): a for _, a in opens}.values())
        for a in hits:
            matched.add((ep.patient, a.detector, a.start_ms))
        first = min((o for o, _ in opens), default=None)
        rows.append({"patient": int(ep.patient), "kind": ep.kind, "start": ep.start.isoformat(),
                     "detected": bool(hits), "alerts": len(hits),
                     "detectors": sorted({a.detector for a in hits}),
                     "hours_to_alert": None if first is None else round((first - s_ms) / 3_600_000, 1)})
    with_episode = set(episodes["patient"].astype(int)) if len(episodes) else set()
    false = [{"patient": int(p), "detector": a.detector, "severity": a.severity,
              "date": str(local_day(a.raised_ms)), "control": int(p) not in with_episode}
             for p, lst in alerts.items() for a in lst if (p, a.detector, a.start_ms) not in matched]
    controls = sorted(set(alerts) - with_episode)
    per_control = []
    for p in controls:
        months = max(len(hr_days_by.get(p, ())), 1) / 30.0
        per_control.append(sum(a.severity != "info" for a in alerts[p]) / months)
    ill_false = [f for f in false if f["detector"] in ILLNESS_DETECTORS]
    ill_days = sum(len(a.days() & hr_days_by.get(p, set())) for p, lst in alerts.items() for a in lst
                   if a.detector in ILLNESS_DETECTORS and (p, a.detector, a.start_ms) not in matched)
    months = sum(len(d) for d in hr_days_by.values()) / 30.0
    n_det = sum(r["detected"] for r in rows)
    return {"episodes": rows, "detected": n_det, "episodes_total": len(rows),
            "episodes_with_exactly_one_alert": sum(r["alerts"] == 1 for r in rows),
            "sensitivity": n_det / len(rows) if rows else None,
            "false_alerts": false,
            "false_alerts_on_controls": sum(f["control"] for f in false),
            "false_illness_alerts": len(ill_false),
            "false_illness_alert_days_per_person_month": round(ill_days / months, 3) if months else None,
            "controls": len(controls),
            "control_non_info_alerts_per_patient_month_max": round(max(per_control, default=0.0), 3),
            "control_non_info_alerts_per_patient_month_mean": _mean(per_control),
            "burden": burden(alerts, hr_days_by)}


def nightly_rhr(frame: pd.DataFrame, tz_offset_min: int = 0) -> pd.DataFrame:
    """NightSignal's nightly resting HR and running-median baseline, for charts."""
    local = frame["time"] + pd.Timedelta(minutes=tz_offset_min)
    minute = local.dt.floor("min")
    hr = frame["metric"] == "heart_rate"
    moving = frame.loc[(frame["metric"] == "steps") & (frame["value"] > 0), "time"]
    moving = set((moving + pd.Timedelta(minutes=tz_offset_min)).dt.floor("min"))
    night = hr & (local.dt.hour < 7) & ~minute.isin(moving)
    per = frame.loc[night, "value"].groupby(local[night].dt.normalize()).mean()
    baseline = per.expanding().median().shift(1)
    return pd.DataFrame({"rhr": per, "baseline": baseline})


def plot_participant(path, pid: str, frame: pd.DataFrame, alerts: list[Alert],
                     onset: pd.Timestamp | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nights = nightly_rhr(frame)
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.plot(nights.index, nights["rhr"], ".-", lw=1, label="nightly resting HR (00:00-06:59)")
    ax.plot(nights.index, nights["baseline"], "-", lw=1.5, label="baseline (median of earlier nights)")
    colours = {"yellow": "#e6b800", "red": "#d62728", "info": "#7f7f7f"}
    seen = set()
    for a in alerts:
        label = f"{a.detector} ({a.severity})"
        for s, e in a.intervals:
            ax.axvspan(pd.Timestamp(s, unit="ms", tz="UTC"), pd.Timestamp(e, unit="ms", tz="UTC"),
                       color=colours.get(a.severity, "#999"), alpha=0.25,
                       label=None if label in seen else label)
            seen.add(label)
    if onset is not None:
        ax.axvline(onset, color="k", ls="--", label="symptom onset")
    ax.set_title(f"{pid}: nightly resting heart rate and alerts")
    ax.set_ylabel("bpm")
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curve(path, title: str, points: list[tuple[str, float, float]], xlabel: str, ylabel: str) -> None:
    """An operating curve: (label, false alert-days per person-month, detected fraction)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    xs = [p[1] for p in points]
    ys = [p[2] for p in points]
    ax.plot(xs, ys, "o-")
    for label, x, y in points:
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
