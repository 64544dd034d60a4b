"""An alert in words a nurse reads in ten seconds: a plain-language title, the evidence
as labelled values with units (lists as per-night values, nested contributors as
groups), and the points of a sparkline of the signal against the patient's baseline.

Pure (no Django). Rendering is generic, driven by the evidence's key names
(``*_bpm`` is in bpm, ``*_min`` in minutes, ``*_hours`` in hours, ``nights`` is a
per-night list, a nested object is a contributor), so a detector's new evidence shows
up without code here; titles are specific per detector with a generic fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Key suffix -> unit shown after the value (longest suffix first).
UNITS = (("_bpm", "bpm"), ("_min", "min"), ("_minutes", "min"), ("_hours", "h"), ("_h", "h"),
         ("_nights", "nights"), ("_days", "days"), ("_pct", "%"))
#: Labels that the key alone does not say well.
LABELS = {
    "r": "Correlation (r)", "z": "Standard scores above usual (z)", "cusum": "Cumulative rise (CUSUM)",
    "threshold": "Alarm level", "hour_resting_hr_bpm": "Resting heart rate this hour",
    "baseline_bpm": "Usual resting heart rate", "baseline_sd_bpm": "Usual variation (SD)",
    "baseline_sleep_min": "Usual sleep", "peak_bpm": "Peak", "mean_bpm": "Mean",
    "threshold_bpm": "Threshold", "yellow_delta_bpm": "Yellow above usual by",
    "red_delta_bpm": "Red above usual by", "resting_hr_bpm": "Resting heart rate",
    "delta_bpm": "above usual", "sleep_min": "Asleep", "gap_hours": "Gap in wear",
    "usual_hours_missed": "Usual wear hours missed", "usual_hours_of_day": "Usual wear hours (of day)",
    "debt_hours": "Sleep missed", "short_nights_in_a_row": "Short nights in a row",
    "short_below_min": "Short below", "minutes": "Lasted", "required_minutes": "Needed",
    "alarm_hours": "Rise has lasted", "nights": "Per night", "baseline_nights": "Usual taken over",
    "baseline_days": "Usual taken over", "window": "Night hours",
}
#: The keys that hold a signal's value, in order of preference (for the sparkline).
SIGNAL_KEYS = ("resting_hr_bpm", "hour_resting_hr_bpm", "sleep_min", "value", "peak_bpm",
               "mean_bpm", "gap_hours")
DAY_KEYS = ("night", "day", "date")
LIST_SHOWN = 14


@dataclass
class Field:
    """One labelled evidence value; ``items`` for per-night values, ``children`` for a
    nested group (a contributor's own evidence)."""

    key: str
    label: str
    value: str = ""
    items: list[tuple[str, str]] = field(default_factory=list)
    children: list[Field] = field(default_factory=list)


def unit_of(key: str) -> str:
    for suffix, unit in UNITS:
        if key.endswith(suffix):
            return unit
    return ""


def label_of(key: str) -> str:
    if key in LABELS:
        return LABELS[key]
    base = key
    for suffix, _ in UNITS:
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("_", " ").strip().capitalize() or key


def number(value: float) -> str:
    """1 decimal at most, no trailing zeros: 8, 8.4, 0.62 (small values keep 2)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if abs(value) < 1:
        return f"{value:.2f}".rstrip("0").rstrip(".") or "0"
    return f"{value:.1f}".rstrip("0").rstrip(".")


def show(key: str, value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        unit = unit_of(key)
        return f"{number(value)} {unit}".strip()
    return str(value)[:80]


def _day(item: Mapping) -> str | None:
    for k in DAY_KEYS:
        if k in item:
            return str(item[k])
    return None


def fields(evidence: Any) -> list[Field]:
    """Every evidence value, labelled, with its unit; nothing left out."""
    if not isinstance(evidence, Mapping):
        return []
    out = []
    # single values first, then per-night lists, then contributors (PostgreSQL's jsonb
    # does not keep the detector's key order)
    order = sorted(evidence.items(), key=lambda kv: isinstance(kv[1], list) + 2 * isinstance(kv[1], Mapping))
    for key, value in order:
        key = str(key)
        f = Field(key, label_of(key))
        if isinstance(value, Mapping):
            f.children = fields(value)
        elif isinstance(value, list):
            f.items = _list_items(key, value)
        else:
            f.value = show(key, value)
        out.append(f)
    return out


def _list_items(key: str, values: list) -> list[tuple[str, str]]:
    items = []
    for i, v in enumerate(values[-LIST_SHOWN:]):
        if isinstance(v, Mapping):
            day = _day(v) or str(i + 1)
            keys = sorted((k for k in v if k not in DAY_KEYS), key=lambda k: k not in SIGNAL_KEYS)
            parts = [show(k, v[k]) if k in SIGNAL_KEYS else f"{show(k, v[k])} {label_of(k)}" for k in keys]
            items.append((day, ", ".join(parts)))
        else:
            items.append(("", show(key, v)))
    if len(values) > LIST_SHOWN:
        items.insert(0, ("", f"(last {LIST_SHOWN} of {len(values)})"))
    return items


# ----------------------------------------------------------------- per-night values

def _walk(evidence: Any) -> Iterable[Mapping]:
    """The evidence and every nested object in it (contributors)."""
    if isinstance(evidence, Mapping):
        yield evidence
        for v in evidence.values():
            if isinstance(v, Mapping):
                yield from _walk(v)


def nights(*evidences: Any) -> list[dict]:
    """Per-night values found anywhere in these evidences (raise, peak, latest), one per
    night, the latest evidence winning, in night order."""
    by_day: dict[str, dict] = {}
    for ev in evidences:
        for obj in _walk(ev):
            for v in obj.values():
                if isinstance(v, list):
                    for item in v:
                        if isinstance(item, Mapping) and (day := _day(item)) is not None:
                            by_day[day] = {**by_day.get(day, {}), **item}
    return [by_day[d] for d in sorted(by_day)]


def _first_number(obj: Mapping, keys: Iterable[str]) -> tuple[str, float] | None:
    for k in keys:
        v = obj.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return k, float(v)
    return None


def baseline(evidence: Any) -> float | None:
    """The patient's usual value the evidence compares against (``baseline*``)."""
    for obj in _walk(evidence):
        for k, v in obj.items():
            if str(k).startswith("baseline") and "sd" not in str(k) and "days" not in str(k) \
                    and "nights" not in str(k) and isinstance(v, int | float) and not isinstance(v, bool):
                return float(v)
    return None


@dataclass
class Spark:
    """A sparkline: values (one per night, or raise/peak/latest), the baseline, its unit."""

    values: list[float]
    labels: list[str]
    baseline: float | None
    unit: str

    def svg_points(self, width: int = 120, height: int = 28, pad: int = 3) -> dict:
        """Coordinates for an inline SVG polyline and the baseline's y (None if none)."""
        ys = self.values + ([self.baseline] if self.baseline is not None else [])
        lo, hi = min(ys), max(ys)
        span = (hi - lo) or 1.0

        def y(v: float) -> float:
            return round(height - pad - (v - lo) / span * (height - 2 * pad), 1)

        n = len(self.values)
        xs = [round(pad + (i * (width - 2 * pad) / (n - 1) if n > 1 else (width - 2 * pad) / 2), 1)
              for i in range(n)]
        return {"width": width, "height": height,
                "points": " ".join(f"{x},{y(v)}" for x, v in zip(xs, self.values, strict=True)),
                "dots": [{"x": x, "y": y(v), "label": f"{lab} {number(v)} {self.unit}".strip()}
                         for x, v, lab in zip(xs, self.values, self.labels, strict=True)],
                "baseline_y": None if self.baseline is None else y(self.baseline)}


def spark(raise_ev: Any, peak_ev: Any, latest_ev: Any) -> Spark | None:
    """The per-night signal against the baseline; without per-night values, the signal
    at raise, peak and now. None when the evidence holds no signal value."""
    base = baseline(latest_ev) or baseline(peak_ev) or baseline(raise_ev)
    per_night = nights(raise_ev, peak_ev, latest_ev)
    if per_night:
        found = [(str(_day(n)), _first_number(n, SIGNAL_KEYS)) for n in per_night]
        found = [(d, f) for d, f in found if f is not None]
        if found:
            key = found[0][1][0]  # type: ignore[index]
            return Spark([f[1] for _, f in found], [d for d, _ in found], base, unit_of(key))  # type: ignore[index]
    points = []
    for label, ev in (("raised", raise_ev), ("peak", peak_ev), ("now", latest_ev)):
        if isinstance(ev, Mapping) and (f := _first_number(ev, SIGNAL_KEYS)) is not None:
            points.append((label, f))
    if not points:
        return None
    return Spark([f[1] for _, f in points], [lab for lab, _ in points], base, unit_of(points[0][1][0]))


# -------------------------------------------------------------------------- titles

def _num(ev: Mapping, key: str) -> float | None:
    v = ev.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _rhr_nights_title(ev: Mapping, prefix: str = "Resting heart rate") -> str | None:
    per_night = nights(ev)
    deltas = [float(n["delta_bpm"]) for n in per_night if isinstance(n.get("delta_bpm"), int | float)]
    if not deltas:
        return None
    return f"{prefix} {number(round(max(deltas)))} bpm above usual for {_plural(len(deltas), 'night')}"


def title(detector: str, evidence: Any, *, for_patient: bool = False) -> str:
    """A plain-language title, e.g. "Resting heart rate 8 bpm above usual for 3 nights".
    ``for_patient`` leaves out the care team's tunable thresholds."""
    ev = evidence if isinstance(evidence, Mapping) else {}
    t: str | None = None
    if detector == "nightsignal_rhr":
        t = _rhr_nights_title(ev)
    elif detector == "illness_rhr":
        t = _rhr_nights_title(ev, "Possible illness: resting heart rate")
        if t is None:
            t = "Possible illness: resting heart rate above usual"
    elif detector == "cusum_rhr":
        x, base, hours = _num(ev, "hour_resting_hr_bpm"), _num(ev, "baseline_bpm"), _num(ev, "alarm_hours")
        if x is not None and base is not None:
            t = f"Resting heart rate {number(round(x - base))} bpm above usual"
            t += f" for {_plural(int(hours), 'hour')}" if hours else ", rising"
    elif detector in ("hr_high_at_rest", "hr_low_at_rest"):
        peak, minutes, thr = _num(ev, "peak_bpm"), _num(ev, "minutes"), _num(ev, "threshold_bpm")
        word = "high" if detector == "hr_high_at_rest" else "low"
        if peak is not None:
            t = f"Heart rate {word} at rest: {number(round(peak))} bpm"
            if minutes:
                t += f" for {_plural(int(minutes), 'minute')}"
            if thr is not None and not for_patient:
                t += f" ({'above' if word == 'high' else 'below'} {number(thr)})"
    elif detector == "wear_gap":
        gap = _num(ev, "gap_hours")
        t = f"Watch not worn for {number(round(gap, 1))} hours" if gap is not None else "Watch not worn"
    elif detector == "sleep_debt":
        n, debt = _num(ev, "short_nights_in_a_row"), _num(ev, "debt_hours")
        if n is not None:
            t = f"{_plural(int(n), 'short night')} in a row"
            if debt is not None:
                t += f", {number(debt)} h of sleep missed"
    return t or detector.replace("_", " ").capitalize()


# What a patient may do about an alert, in plain words (advice, never a diagnosis). Staff
# notes, actions and the detector's evidence stay with the care team.
_RISE = ("Your resting heart rate has been higher than usual. Rest, drink enough fluids and "
         "notice symptoms such as fever, a cough or tiredness; tell your care team if you feel unwell.")
_WHAT_TO_DO = {
    "hr_high_at_rest": "Sit down and rest for a few minutes, then notice how you feel. If you have "
                       "chest pain, feel faint or are short of breath, call your emergency number.",
    "hr_low_at_rest": "If you feel dizzy, faint or unusually tired, sit or lie down and contact your "
                      "care team. If you faint or have chest pain, call your emergency number.",
    "nightsignal_rhr": _RISE,
    "cusum_rhr": _RISE,
    "illness_rhr": _RISE,
    "wear_gap": "Put your watch back on (and charge it if needed) so that your readings continue.",
    "sleep_debt": "You have slept less than usual for a few nights. Try to give yourself at least "
                  "7 hours of sleep tonight, and keep a regular bedtime.",
}
_DEFAULT_WHAT_TO_DO = "Your care team has been told. If you feel unwell, contact them."
_URGENT = " Your care team has been told and may contact you."
#: The patient's view of where the alert stands: snoozes and escalations are the care team's.
PATIENT_STATUS = {
    "open": ("open", "Your care team has been told."),
    "acknowledged": ("in_review", "Your care team is looking at it."),
    "snoozed": ("in_review", "Your care team is looking at it."),
    "escalated": ("in_review", "Your care team is looking at it."),
    "resolved": ("closed", "Closed by your care team."),
}


def what_to_do(detector: str, severity: str) -> str:
    """What the patient can do now, in plain words."""
    text = _WHAT_TO_DO.get(detector, _DEFAULT_WHAT_TO_DO)
    return text + _URGENT if severity == "red" and text is not _DEFAULT_WHAT_TO_DO else text


def patient_status(status: str) -> tuple[str, str]:
    """(open | in_review | closed, a sentence) for the patient."""
    return PATIENT_STATUS.get(status, ("in_review", "Your care team is looking at it."))
