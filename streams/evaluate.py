"""Scoring the detectors on recordings: real data with symptom onsets, and the simulator.

The replay is ``streams.replay.replay_frame``: the worker's own ``PatientMonitor``,
in event time. An *alert* here is one episode (detector, window start) in its final
state; its *date* is when it was first raised (the end of the window of its ``open``
event: for NightSignal, the morning of the second elevated night).

With labels (participant, symptom_onset), following Mishra et al. and Alavi et al.:

* detected: an illness alert raised within [onset - 21 days, onset + 7 days];
* lead_days: onset minus the date of the first such alert (positive = before onset);
* false_alert_days_per_month: calendar days covered by alerts outside
  [onset - 21 days, onset + 21 days], per 30 days of recording outside that span
  (the whole recording for a participant without an onset).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import pandas as pd

from streams.detectors import Event

ILLNESS_DETECTORS = ("nightsignal_rhr", "cusum_rhr")
EPISODE_DETECTORS = {
    "high_hr_at_rest": ("hr_high_at_rest",),
    "elevated_rhr": ILLNESS_DETECTORS,
    "short_sleep": ("sleep_debt",),
    "wear_gap": ("wear_gap",),
}
DAY = pd.Timedelta(days=1)


@dataclass
class Alert:
    detector: str
    severity: str
    raised: pd.Timestamp
    start: pd.Timestamp
    end: pd.Timestamp
    closed: bool

    def days(self) -> set:
        return set(pd.date_range(self.start.normalize(), self.end.normalize(), freq="D").date)


def fold(events: Iterable[Event]) -> list[Alert]:
    """Events -> one Alert per episode, in its final state."""
    out: dict[tuple[str, int], Alert] = {}
    for e in events:
        key = (e.detector, e.window_start)
        a = out.get(key)
        ts = pd.Timestamp(e.window_end, unit="ms", tz="UTC")
        if a is None:
            out[key] = Alert(e.detector, e.severity, ts,
                             pd.Timestamp(e.window_start, unit="ms", tz="UTC"), ts, e.state == "closed")
        else:
            a.severity, a.end, a.closed = e.severity, max(a.end, ts), e.state == "closed"
    return sorted(out.values(), key=lambda a: (a.raised, a.detector))


@dataclass
class ParticipantResult:
    id: str
    days: float
    alerts: list[dict]
    onset: str | None = None
    detected: bool | None = None
    lead_days: float | None = None
    false_alert_days: int = 0
    clear_days: int = 0  # recorded days outside [onset - 21, onset + 21]
    false_alert_days_per_month: float = 0.0


@dataclass
class Report:
    participants: list[ParticipantResult] = field(default_factory=list)
    detectors: tuple[str, ...] = ILLNESS_DETECTORS

    @property
    def sensitivity(self) -> float | None:
        labelled = [p for p in self.participants if p.detected is not None]
        return None if not labelled else sum(bool(p.detected) for p in labelled) / len(labelled)

    @property
    def false_alert_days_per_month(self) -> float:
        days = sum(p.false_alert_days for p in self.participants)
        months = sum(p.clear_days for p in self.participants) / 30.0
        return 0.0 if months == 0 else days / months

    def as_dict(self) -> dict:
        return {
            "detectors": list(self.detectors),
            "participants": [asdict(p) for p in self.participants],
            "sensitivity": self.sensitivity,
            "false_alert_days_per_month": round(self.false_alert_days_per_month, 3),
        }


def score_participant(pid: str, alerts: list[Alert], first: pd.Timestamp, last: pd.Timestamp,
                      onset: pd.Timestamp | None, detectors: Iterable[str]) -> ParticipantResult:
    detectors = set(detectors)
    mine = [a for a in alerts if a.detector in detectors]
    res = ParticipantResult(
        id=str(pid), days=round((last - first) / DAY, 1),
        alerts=[{"detector": a.detector, "severity": a.severity, "date": str(a.raised.date()),
                 "start": a.start.isoformat(), "end": a.end.isoformat(), "closed": a.closed}
                for a in alerts],
    )
    all_days = set(pd.date_range(first.normalize(), last.normalize(), freq="D").date)
    alert_days = set().union(*(a.days() for a in mine)) if mine else set()
    if onset is not None:
        res.onset = str(onset.date())
        hits = [a for a in mine if onset - 21 * DAY <= a.raised <= onset + 7 * DAY]
        res.detected = bool(hits)
        if hits:
            res.lead_days = round((onset - min(a.raised for a in hits)) / DAY, 1)
        excluded = set(pd.date_range((onset - 21 * DAY).normalize(), (onset + 21 * DAY).normalize(),
                                     freq="D").date)
        clear = all_days - excluded
    else:
        clear = all_days
    res.false_alert_days = len(alert_days & clear)
    res.clear_days = len(clear)
    res.false_alert_days_per_month = round(res.false_alert_days / (len(clear) / 30.0), 3) if clear else 0.0
    return res


def score_simulated(episodes: pd.DataFrame, alerts: dict[int, list[Alert]],
                    slack: pd.Timedelta = DAY) -> dict:
    """Ground truth of the simulator: each episode's matching alert, and the rest."""
    rows, matched = [], set()
    for ep in episodes.itertuples():
        wanted = EPISODE_DETECTORS[ep.kind]
        hits = [a for a in alerts.get(ep.patient, []) if a.detector in wanted
                and a.end >= ep.start - slack and a.start <= ep.end + slack]
        for a in hits:
            matched.add((ep.patient, a.detector, a.start))
        first = min((a.raised for a in hits), default=None)
        rows.append({"patient": int(ep.patient), "kind": ep.kind, "start": ep.start.isoformat(),
                     "detected": bool(hits), "detectors": sorted({a.detector for a in hits}),
                     "hours_to_alert": None if first is None else round((first - ep.start) / pd.Timedelta(hours=1), 1)})
    with_episode = set(episodes["patient"].astype(int))
    false = [{"patient": int(p), "detector": a.detector, "severity": a.severity,
              "date": str(a.raised.date()), "control": int(p) not in with_episode}
             for p, lst in alerts.items() for a in lst if (p, a.detector, a.start) not in matched]
    n_det = sum(r["detected"] for r in rows)
    return {"episodes": rows, "detected": n_det, "episodes_total": len(rows),
            "sensitivity": n_det / len(rows) if rows else None,
            "false_alerts": false,
            "false_alerts_on_controls": sum(f["control"] for f in false),
            "controls": len(set(alerts) - with_episode)}


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
        ax.axvspan(a.start.tz_localize(None) if a.start.tzinfo else a.start,
                   a.end.tz_localize(None) if a.end.tzinfo else a.end,
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

