"""What a clinician may tune on each detector, in words: label, unit, default and the
allowed range, plus the one parameter the verdict feedback may move and its bound.

Pure (no Django). The detectors (``streams.detectors``) hold the behaviour and their
own defaults; this table is what the threshold form and the feedback loop show and
check. tests/alerts/test_parameters.py holds the defaults here equal to the detectors'.
A detector or parameter missing here is still accepted by the detectors' own check,
shown without unit or range, and never moved by the feedback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Parameter:
    name: str
    label: str
    unit: str
    default: float
    low: float
    high: float

    def check(self, value: float) -> str | None:
        """None when allowed, else the reason (names the range and unit)."""
        if not self.low <= value <= self.high:
            return f"{self.label} must be between {_n(self.low)} and {_n(self.high)} {self.unit}".rstrip()
        return None


def _n(x: float) -> str:
    return f"{x:g}"


def _p(name, label, unit, default, low, high) -> Parameter:
    return Parameter(name, label, unit, float(default), float(low), float(high))


PARAMETERS: dict[str, dict[str, Parameter]] = {
    "hr_high_at_rest": {p.name: p for p in (
        _p("threshold", "Heart rate above", "bpm", 120, 90, 180),
        _p("duration_min", "For at least", "min", 10, 5, 120),
        _p("red_after_min", "Red after", "min", 30, 10, 240),
        _p("rest_window_min", "No steps in the last", "min", 10, 5, 60),
    )},
    "hr_low_at_rest": {p.name: p for p in (
        _p("threshold", "Heart rate below", "bpm", 40, 25, 60),
        _p("duration_min", "For at least", "min", 10, 5, 120),
        _p("red_after_min", "Red after", "min", 30, 10, 240),
        _p("rest_window_min", "No steps in the last", "min", 10, 5, 60),
    )},
    "nightsignal_rhr": {p.name: p for p in (
        _p("yellow_delta", "Yellow when the night's resting rate is above usual by", "bpm", 3, 2, 10),
        _p("red_delta", "Red when above usual by", "bpm", 4, 3, 15),
        _p("consecutive_nights", "For nights in a row", "nights", 2, 1, 7),
        _p("min_samples", "Resting samples a night needs", "samples", 10, 5, 120),
        # inside the illness episode (the only place NightSignal raises queue items)
        _p("min_night_hours", "Hours of resting data a night needs", "h", 2, 0, 6),
        _p("lapse_nights", "Episode ends after nights without an alerting night", "nights", 3, 1, 14),
    )},
    "cusum_rhr": {p.name: p for p in (
        _p("yellow_after_hours", "Yellow after a rise lasting", "h", 24, 6, 96),
        _p("red_after_hours", "Red after a rise lasting", "h", 48, 12, 168),
        _p("null_quantile", "Alarm level (quantile of normal variation)", "", 0.99, 0.9, 0.999),
    )},
    # The illness episode (NightSignal and CuSum inside it; their own rows above reach them).
    "illness_rhr": {p.name: p for p in (
        _p("open_score", "Open an episode at a combined score of", "points", 2.5, 1.5, 4),
        _p("red_score", "Red from a combined score of", "points", 3, 2, 5),
        _p("stale_days", "Close after days without new evidence", "days", 7, 3, 14),
        _p("max_new_per_30d", "New episodes per 30 days at most", "episodes", 1, 1, 4),
    )},
    "wear_gap": {p.name: p for p in (
        _p("min_gap_hours", "Report gaps in usual wear longer than", "h", 3, 1, 24),
        _p("yellow_gap_hours", "Yellow after a gap of", "h", 24, 6, 96),
        _p("usual_fraction", "An hour is usual when worn on this share of days", "", 0.7, 0.3, 0.95),
    )},
    "sleep_debt": {p.name: p for p in (
        _p("short_ratio", "A night is short below this share of usual sleep", "", 0.75, 0.5, 0.95),
        _p("min_deficit_min", "and at least this much under usual", "min", 60, 15, 240),
        _p("yellow_nights", "Yellow after short nights in a row", "nights", 3, 2, 7),
        _p("red_nights", "Red after short nights in a row", "nights", 5, 3, 14),
    )},
}


@dataclass(frozen=True)
class FeedbackRule:
    """When a patient's alerts of one detector are judged not actionable ``after`` times
    (since the last change of that detector's thresholds, within ``days``), move
    ``parameter`` by ``step`` (away from alerting), never past ``bound``."""

    parameter: str
    step: float
    bound: float
    after: int = 3
    days: int = 30


FEEDBACK: dict[str, FeedbackRule] = {
    "hr_high_at_rest": FeedbackRule("threshold", 5, 150),
    "hr_low_at_rest": FeedbackRule("threshold", -3, 30),
    "nightsignal_rhr": FeedbackRule("consecutive_nights", 1, 4),
    "cusum_rhr": FeedbackRule("yellow_after_hours", 6, 42),
    "illness_rhr": FeedbackRule("open_score", 0.5, 3.5),
    "wear_gap": FeedbackRule("min_gap_hours", 2, 12),
    "sleep_debt": FeedbackRule("yellow_nights", 1, 4),
}


def parameter(detector: str, name: str) -> Parameter | None:
    return PARAMETERS.get(detector, {}).get(name)


def check(detector: str, params: dict[str, float]) -> dict[str, str]:
    """Out-of-range values, by parameter name (empty when all are allowed)."""
    errors = {}
    for name, value in params.items():
        p = parameter(detector, name)
        if p is not None and (reason := p.check(float(value))):
            errors[name] = reason
    return errors
