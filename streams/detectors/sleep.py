"""Sleep debt: several nights in a row well below the patient's own usual sleep.

A night runs from local noon to the next local noon; its sleep is the time in sleep
stages (light, deep, rem, asleep) of its sleep-stage intervals. A night is *recorded*
when it has any sleep-stage interval (awake included), and *short* when its sleep is
under ``short_ratio`` of the baseline and at least ``min_deficit_min`` under it. The
baseline is the median of the last ``baseline_nights`` recorded nights that were not
short (scoring starts with ``min_nights`` of them). ``yellow_nights`` short nights in a
row raise yellow, ``red_nights`` red; a recorded normal night closes the episode;
unrecorded nights (watch off at night) neither count nor break a streak.

Sleep intervals arrive in the morning, hours after the night's minutes were final
for the heart-rate detectors, so this detector takes them raw (``_ingest``) and
judges a night ``sleep_lateness_h`` hours after it ends.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from streams.detectors.base import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    SLEEP,
    Detector,
    Episode,
    Event,
    MinuteFrame,
    Samples,
    _r,
)
from streams.detectors.nightsignal import day_label

NOON_MS = 12 * HOUR_MS


class SleepDebt(Detector):
    """Consecutive short nights against the patient's own median night.

    >>> import numpy as np
    >>> from streams.detectors.base import Samples, SLEEP
    >>> day0 = 19_000 * 86_400_000
    >>> starts = day0 + np.arange(14) * 86_400_000 + 23 * 3_600_000   # 23:00 each night
    >>> hours = np.where(np.arange(14) >= 10, 4.5, 7.5)                 # the last four short
    >>> s = Samples.from_arrays(SLEEP, starts, starts + (hours * 3_600_000).astype(int),
    ...                         asleep=np.ones(14, bool))
    >>> det = SleepDebt(lateness_s=0)
    >>> events = det.update(s) + det.advance_to(day0 + 16 * 86_400_000)
    >>> [(e.state, e.severity, len(e.evidence["nights"])) for e in events]
    [('open', 'yellow', 3)]
    """

    name: ClassVar[str] = "sleep_debt"

    def __init__(self, short_ratio: float = 0.75, min_deficit_min: float = 60,
                 yellow_nights: int = 3, red_nights: int = 5, baseline_nights: int = 28,
                 min_nights: int = 7, sleep_lateness_h: float = 12, cooldown_nights: int = 1,
                 lateness_s: float = 600, tz_offset_min: int = 0) -> None:
        self.short_ratio = short_ratio
        self.min_deficit_min = min_deficit_min
        self.yellow_nights = yellow_nights
        self.red_nights = red_nights
        self.baseline_nights = baseline_nights
        self.min_nights = min_nights
        self.sleep_lateness_h = sleep_lateness_h
        self.cooldown_nights = cooldown_nights
        super().__init__(lateness_s, tz_offset_min)
        self.next_night_: int | None = None  # the next night to judge (local day number of its evening)
        self.acc_: dict[int, list[int]] = {}  # night -> [asleep ms, sleep-stage intervals]
        self.ring_ = np.full(baseline_nights, np.nan, np.float32)
        self.n_ring_ = 0
        self.streak_: list[tuple[int, float]] = []  # (night, minutes) of the short run
        self.episode_ = Episode(cooldown_nights * DAY_MS)

    def _night_of(self, t: np.ndarray) -> np.ndarray:
        return (t + self._tz_ms - NOON_MS) // DAY_MS

    def _ingest(self, samples: Samples) -> None:
        sl = samples.metric == SLEEP
        if not sl.any():
            return
        t, e = samples.time[sl], np.maximum(samples.end[sl], samples.time[sl])
        night = self._night_of(t + (e - t) // 2)
        ms = np.where(samples.asleep[sl], e - t, 0)
        if self.next_night_ is not None:
            late = night < self.next_night_
            self.late_samples_ += int(late.sum())
            night, ms = night[~late], ms[~late]
        if night.size == 0:
            return
        u, inv = np.unique(night, return_inverse=True)
        tot = np.bincount(inv, weights=ms.astype(np.float64))
        cnt = np.bincount(inv)
        for n, a, c in zip(u.tolist(), tot.tolist(), cnt.tolist(), strict=True):
            acc = self.acc_.setdefault(n, [0, 0])
            acc[0] += int(a)
            acc[1] += int(c)

    def baseline(self) -> float:
        n = min(self.n_ring_, self.baseline_nights)
        return float(np.median(self.ring_[:n])) if n >= self.min_nights else float("nan")

    def _step(self, frame: MinuteFrame) -> list[Event]:
        now_ms = frame.stop * MINUTE_MS
        # nights whose end (next local noon) + lateness is behind the stream
        done = int(self._night_of(np.array([now_ms - int(self.sleep_lateness_h * HOUR_MS)]))[0]) - 1
        if self.next_night_ is None:
            if not self.acc_:
                return []
            self.next_night_ = min(self.acc_)
        events: list[Event] = []
        while self.next_night_ <= done:
            self._judge(self.next_night_, events)
            self.next_night_ += 1
        return events

    def _judge(self, night: int, events: list[Event]) -> None:
        ms, count = self.acc_.pop(night, (0, 0))
        if count == 0:
            return  # not recorded
        minutes = ms / MINUTE_MS
        base = self.baseline()
        short = (np.isfinite(base) and minutes < self.short_ratio * base
                 and base - minutes >= self.min_deficit_min)
        start = night * DAY_MS + NOON_MS - self._tz_ms
        end = start + DAY_MS
        if not short:
            self.ring_[self.n_ring_ % self.baseline_nights] = minutes
            self.n_ring_ += 1
            if self.streak_:
                ev = self.episode_.close(self.name, end, self._evidence(base, [(night, minutes)]))
                if ev is not None:
                    events.append(ev)
            self.streak_ = []
            return
        self.streak_.append((night, minutes))
        k = len(self.streak_)
        if k >= self.yellow_nights:
            severity = "red" if k >= self.red_nights else "yellow"
            first = self.streak_[0][0] * DAY_MS + NOON_MS - self._tz_ms
            ev = self.episode_.raise_(self.name, first, end, severity,
                                      self._evidence(base, self.streak_[-7:]))
            if ev is not None:
                events.append(ev)
            else:
                self.episode_.extend(end)

    def _evidence(self, base: float, nights) -> dict:
        return {
            "baseline_sleep_min": _r(base, 0),
            "short_below_min": _r(min(self.short_ratio * base, base - self.min_deficit_min), 0),
            "nights": [{"night": day_label(n), "sleep_min": _r(m, 0)} for n, m in nights],
            "debt_hours": _r(sum(base - m for _, m in nights) / 60, 1),
            "short_nights_in_a_row": len(self.streak_),
        }
