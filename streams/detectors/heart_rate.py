"""Sustained high or low heart rate at rest (the Apple Watch notification's definition).

Apple Watch notifies when heart rate stays above a threshold the wearer picks
(default 120 bpm; low: 40 bpm) for 10 minutes while the wearer seems inactive. Here a
minute is *at rest* when no steps were counted in it nor in the ``rest_window_min``
minutes before it; the condition holds over a run of minutes whose heart rate is
beyond the threshold, at rest, with no minute of contrary evidence and gaps without
heart rate no longer than ``max_gap_min``.

One rest period, one alert: a run that starts before the patient has moved for
``active_split_min`` minutes since the last run ended (and within
``merge_within_min``) re-opens the same episode. On real data a night of high heart
rate at rest came as four alerts (participant AJ7TSV9, 2020-07-05/06); now one.
The budget: a new run within ``cooldown_min`` (3 days) of the last episode's end
re-opens that episode too (the queue item comes back) instead of adding one.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from streams.detectors.base import (
    HR_SCALE,
    MINUTE_MS,
    Detector,
    Episode,
    Event,
    MinuteFrame,
)


class _HeartRateAtRest(Detector):
    direction: ClassVar[int] = 1  # +1 high, -1 low

    def __init__(self, threshold: float, duration_min: int = 10, rest_window_min: int = 10,
                 max_gap_min: int = 5, red_after_min: int = 30, cooldown_min: int = 4320,
                 active_split_min: int = 10, merge_within_min: int = 720,
                 lateness_s: float = 600, tz_offset_min: int = 0) -> None:
        self.threshold = threshold
        self.duration_min = duration_min
        self.rest_window_min = rest_window_min
        self.max_gap_min = max_gap_min
        self.red_after_min = red_after_min
        self.cooldown_min = cooldown_min
        self.active_split_min = active_split_min
        self.merge_within_min = merge_within_min
        super().__init__(lateness_s, tz_offset_min)
        self.moved_ = 0  # moving minutes ever seen (a running count)
        self.moved_at_last_ = 0  # that count at the last minute of the latest run
        self.merge_ = False  # the current run continues the last episode's rest period
        self.steps_tail_ = np.zeros(max(rest_window_min - 1, 0), np.int8)
        self.run_start_ = -1  # first minute of the current run, -1 when none
        self.run_last_ = -1
        self.run_peak_ = 0.0
        self.run_sum_ = 0  # milli-bpm over the run's samples
        self.run_n_ = 0
        self.episode_ = Episode(cooldown_min * MINUTE_MS)

    def _evidence(self) -> dict:
        minutes = self.run_last_ - self.run_start_ + 1
        return {
            "threshold_bpm": float(self.threshold),
            "direction": "above" if self.direction > 0 else "below",
            "peak_bpm": round(self.run_peak_, 1),
            "mean_bpm": round(self.run_sum_ / max(self.run_n_, 1) / HR_SCALE, 1),
            "minutes": int(minutes),
            "required_minutes": int(self.duration_min),
            "rest": f"no steps in the {self.rest_window_min} minutes before each",
        }

    def _end_run(self, events: list[Event]) -> None:
        if self.run_start_ >= 0:
            ev = self.episode_.close(self.name, (self.run_last_ + 1) * MINUTE_MS, self._evidence())
            if ev is not None:
                events.append(ev)
        self.run_start_ = -1
        self.run_n_ = 0
        self.run_sum_ = 0
        self.run_peak_ = 0.0

    def _step(self, frame: MinuteFrame) -> list[Event]:
        width = max(int(self.rest_window_min), 1)
        has = frame.hr_n > 0
        mean = frame.hr_mean()
        beyond = (mean - float(self.threshold)) * self.direction > 0
        events: list[Event] = []
        if self.run_start_ < 0 and not (has & beyond).any():
            # the hot path: no run open and no minute beyond the threshold, so the rest
            # counts are not needed; only the running state moves on
            self.steps_tail_ = frame.rest_tail(self.steps_tail_, width)
            if len(frame):
                self.moved_ += int(frame.moving_cumsum()[-1])
            return events
        active, self.steps_tail_ = frame.rest_counts(self.steps_tail_, width)
        cond = has & (active == 0) & beyond
        moved = self.moved_ + frame.moving_cumsum()
        self.moved_ = int(moved[-1]) if moved.size else self.moved_
        if self.run_start_ < 0 and not cond.any():
            return events  # beyond the threshold, but not at rest
        for i in np.flatnonzero(has):
            m = frame.start + int(i)
            if self.run_start_ >= 0 and m - self.run_last_ > self.max_gap_min + 1:
                self._end_run(events)
            if not cond[i]:
                self._end_run(events)
                continue
            if self.run_start_ < 0:
                ep = self.episode_
                # the same rest period: no real activity since the last run, not too long after
                self.merge_ = (ep.closed_at >= 0 and int(moved[i]) - self.moved_at_last_ < self.active_split_min
                               and m * MINUTE_MS - ep.closed_at <= self.merge_within_min * MINUTE_MS)
                self.run_start_ = m
                self.run_peak_ = float(mean[i])
            self.run_last_ = m
            self.moved_at_last_ = int(moved[i])
            self.run_sum_ += int(frame.hr_sum[i])
            self.run_n_ += int(frame.hr_n[i])
            pick = max if self.direction > 0 else min
            self.run_peak_ = pick(self.run_peak_, float(mean[i]))
            minutes = m - self.run_start_ + 1
            if minutes >= self.duration_min:
                severity = "red" if minutes >= self.red_after_min else "yellow"
                ev = self.episode_.raise_(self.name, self.run_start_ * MINUTE_MS,
                                          (m + 1) * MINUTE_MS, severity, self._evidence(),
                                          merge=self.merge_)
                if ev is not None:
                    events.append(ev)
                else:
                    self.episode_.extend((m + 1) * MINUTE_MS)
        if self.run_start_ >= 0 and frame.stop - 1 - self.run_last_ > self.max_gap_min + 1:
            self._end_run(events)
        return events


class HighHeartRateAtRest(_HeartRateAtRest):
    """Heart rate above ``threshold`` (default 120 bpm) for 10 minutes at rest.

    Yellow once the run lasts ``duration_min``; red at ``red_after_min``; closed when
    a resting minute below the threshold (or any active minute) is seen.

    >>> import numpy as np
    >>> from streams.detectors.base import Samples, HEART_RATE
    >>> t0 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
    >>> t = t0 + np.arange(40) * 60_000
    >>> hr = np.where(np.arange(40) < 25, 130.0, 70.0)
    >>> det = HighHeartRateAtRest(lateness_s=0)
    >>> events = det.update(Samples.from_arrays(HEART_RATE, t, value=hr))
    >>> [(e.state, e.severity) for e in events]
    [('open', 'yellow'), ('closed', 'yellow')]
    >>> events[-1].evidence["minutes"]
    25
    """

    name: ClassVar[str] = "hr_high_at_rest"
    direction: ClassVar[int] = 1

    def __init__(self, threshold: float = 120, duration_min: int = 10, rest_window_min: int = 10,
                 max_gap_min: int = 5, red_after_min: int = 30, cooldown_min: int = 4320,
                 active_split_min: int = 10, merge_within_min: int = 720,
                 lateness_s: float = 600, tz_offset_min: int = 0) -> None:
        super().__init__(threshold, duration_min, rest_window_min, max_gap_min, red_after_min,
                         cooldown_min, active_split_min, merge_within_min, lateness_s, tz_offset_min)


class LowHeartRateAtRest(_HeartRateAtRest):
    """Heart rate below ``threshold`` (default 40 bpm) for 10 minutes at rest.

    >>> import numpy as np
    >>> from streams.detectors.base import Samples, HEART_RATE
    >>> t = 1_700_000_040_000 + np.arange(30) * 60_000
    >>> det = LowHeartRateAtRest(lateness_s=0)
    >>> [e.state for e in det.update(Samples.from_arrays(HEART_RATE, t, value=np.full(30, 35.0)))]
    ['open']
    """

    name: ClassVar[str] = "hr_low_at_rest"
    direction: ClassVar[int] = -1

    def __init__(self, threshold: float = 40, duration_min: int = 10, rest_window_min: int = 10,
                 max_gap_min: int = 5, red_after_min: int = 30, cooldown_min: int = 4320,
                 active_split_min: int = 10, merge_within_min: int = 720,
                 lateness_s: float = 600, tz_offset_min: int = 0) -> None:
        super().__init__(threshold, duration_min, rest_window_min, max_gap_min, red_after_min,
                         cooldown_min, active_split_min, merge_within_min, lateness_s, tz_offset_min)
