"""All of one patient's detectors behind one event-time buffer.

``PatientMonitor`` is itself a detector (same contract): it bins samples once and
hands each final minute frame to every child's logic, so the Faust worker keeps one
object per patient in its table, and a replay runs the very same code.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from streams.detectors.base import Detector, Event, MinuteFrame, Samples
from streams.detectors.cusum import CuSumRHR
from streams.detectors.heart_rate import HighHeartRateAtRest, LowHeartRateAtRest
from streams.detectors.illness import CONTRIBUTORS, NIGHTSIGNAL_DEFAULTS, IllnessEpisode
from streams.detectors.nightsignal import NightSignal
from streams.detectors.sleep import SleepDebt
from streams.detectors.wear import WearGap

DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (HighHeartRateAtRest, LowHeartRateAtRest, NightSignal, CuSumRHR, IllnessEpisode,
                WearGap, SleepDebt)
}
#: What a patient's monitor runs: NightSignal and CuSum only inside the illness episode.
DEFAULT_DETECTORS = ("hr_high_at_rest", "hr_low_at_rest", "illness_rhr", "wear_gap", "sleep_debt")

# Parameters a clinician may change on a running detector (thresholds, not structure).
TUNABLE: dict[str, tuple[str, ...]] = {
    "hr_high_at_rest": ("threshold", "duration_min", "red_after_min", "rest_window_min"),
    "hr_low_at_rest": ("threshold", "duration_min", "red_after_min", "rest_window_min"),
    "nightsignal_rhr": ("yellow_delta", "red_delta", "consecutive_nights", "min_samples",
                        "min_night_hours", "lapse_nights"),
    "cusum_rhr": ("yellow_after_hours", "red_after_hours", "null_quantile", "rebaseline_days"),
    "illness_rhr": ("open_score", "red_score", "close_score", "cusum_weight", "stale_days",
                    "max_new_per_30d"),
    "wear_gap": ("min_gap_hours", "yellow_gap_hours", "usual_fraction"),
    "sleep_debt": ("short_ratio", "min_deficit_min", "yellow_nights", "red_nights"),
}


def validate_overrides(detector: str, params: Mapping[str, Any]) -> dict[str, float]:
    """Check a clinician's override; raise ValueError naming what is wrong."""
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r} (known: {', '.join(DETECTORS)})")
    if not isinstance(params, Mapping):
        raise ValueError("params must be an object")
    out: dict[str, float] = {}
    for key, value in params.items():
        if key not in TUNABLE[detector]:
            raise ValueError(f"{detector}.{key} cannot be overridden "
                             f"(allowed: {', '.join(TUNABLE[detector])})")
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise ValueError(f"{detector}.{key} must be a number")
        out[key] = value
    return out


def _defaults(cls: type[Detector]) -> dict[str, Any]:
    return {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
            if p.default is not inspect.Parameter.empty}


class PatientMonitor(Detector):
    """Every detector of one patient, sharing one event-time buffer.

    ``params`` gives detectors hyperparameters other than their defaults, by name
    (``{"cusum_rhr": {"rebaseline_days": 5}}``; NightSignal's and CuSum's reach them
    inside the illness episode): what ``evaluate_detectors --sweep`` varies.

    >>> import numpy as np
    >>> from streams.detectors.base import Samples, HEART_RATE
    >>> t = 1_700_000_040_000 + np.arange(30) * 60_000
    >>> mon = PatientMonitor(lateness_s=0)
    >>> [(e.detector, e.state) for e in mon.update(Samples.from_arrays(HEART_RATE, t, value=np.full(30, 150.0)))]
    [('hr_high_at_rest', 'open')]
    """

    name: ClassVar[str] = "monitor"

    def __init__(self, detectors: Sequence[str] | None = None, lateness_s: float = 600,
                 tz_offset_min: int = 0, params: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.detectors = detectors
        self.params = params
        super().__init__(lateness_s, tz_offset_min)
        names = list(DEFAULT_DETECTORS) if detectors is None else list(detectors)
        given = {k: dict(v) for k, v in (params or {}).items()}
        unknown = set(given) - set(DETECTORS)
        if unknown:
            raise ValueError(f"unknown detectors in params: {sorted(unknown)}")
        if "illness_rhr" in names:
            ill = given.setdefault("illness_rhr", {})
            for c in CONTRIBUTORS:
                if c in given and c not in names:
                    ill[{"nightsignal_rhr": "nightsignal", "cusum_rhr": "cusum"}[c]] = given.pop(c)
        self.children_: list[Detector] = []
        for n in names:
            child = DETECTORS[n](**given.get(n, {}), lateness_s=lateness_s, tz_offset_min=tz_offset_min)
            child.bins_ = None  # the monitor bins for all of them
            self.children_.append(child)
        self.overrides_: dict[str, dict[str, Any]] = {}

    def all_detectors(self) -> list[Detector]:
        """The children and, inside the illness episode, its contributors."""
        out: list[Detector] = []
        for c in self.children_:
            out.append(c)
            out.extend(getattr(c, "contributors_", []))
        return out

    def child(self, name: str) -> Detector:
        for c in self.all_detectors():
            if c.name == name:
                return c
        raise KeyError(name)

    def _base_params(self, c: Detector) -> dict[str, Any]:
        """A detector's tunable parameters without overrides: the class defaults, then
        NightSignal's inside the illness episode, then this monitor's ``params``."""
        base = {k: v for k, v in _defaults(type(c)).items() if k in TUNABLE[c.name]}
        inside = any(c is x for ch in self.children_ for x in getattr(ch, "contributors_", []))
        layers = [NIGHTSIGNAL_DEFAULTS if inside and c.name == "nightsignal_rhr" else {},
                  (self.params or {}).get(c.name, {})]
        for layer in layers:
            base.update({k: v for k, v in layer.items() if k in base})
        return base

    def apply_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> bool:
        """Make the detectors' tunable parameters defaults + ``overrides``; True if changed."""
        wanted = {k: dict(v) for k, v in overrides.items() if v}
        if wanted == self.overrides_:
            return False
        for c in self.all_detectors():
            params = self._base_params(c)
            params.update(validate_overrides(c.name, wanted.get(c.name, {})))
            c.set_params(**params)
        self.overrides_ = wanted
        return True

    def _ingest(self, samples: Samples) -> None:
        for c in self.children_:
            c._ingest(samples)

    def _step(self, frame: MinuteFrame) -> list[Event]:
        events: list[Event] = []
        for c in self.children_:
            events.extend(c._step(frame))
        return events

    @property
    def late_samples(self) -> int:
        return self.late_samples_ + sum(c.late_samples_ for c in self.all_detectors())
