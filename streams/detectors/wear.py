"""Wear gaps: no heart rate for hours in a period this patient usually wears the device.

The patient's wear profile is learned, per local hour of day, from the last
``profile_days`` days: an hour is *usual* when the device was worn (at least
``worn_minutes_per_hour`` minutes with heart rate) in at least ``usual_fraction`` of
them. A gap is the time between two minutes with heart rate; it raises an alert once
it covers ``min_gap_hours`` of usual hours (yellow from ``yellow_gap_hours``) and
closes when heart rate comes back. Heart rate, not steps, marks wear: a phone counts
steps in a pocket, a heart-rate sensor needs skin.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from streams.detectors.base import HOUR_MS, MINUTE_MS, Detector, Episode, Event, MinuteFrame


def _bits(mask: int) -> np.ndarray:
    return ((int(mask) >> np.arange(24)) & 1).astype(bool)


class WearGap(Detector):
    """Hours without heart rate when this patient usually wears the device.

    >>> import numpy as np
    >>> from streams.detectors.base import Samples, HEART_RATE
    >>> day0 = 19_000 * 86_400_000
    >>> t = day0 + np.arange(0, 12 * 1440, 5) * 60_000                 # worn all day, 12 days
    >>> t = t[(t < day0 + 10 * 86_400_000 + 8 * 3_600_000) | (t >= day0 + 10 * 86_400_000 + 14 * 3_600_000)]
    >>> det = WearGap(lateness_s=0)
    >>> events = det.update(Samples.from_arrays(1, t, value=np.full(t.size, 70.0)))
    >>> [(e.state, e.severity, e.evidence["usual_hours_missed"]) for e in events]
    [('open', 'info', 3.0), ('closed', 'info', 6.07)]
    """

    name: ClassVar[str] = "wear_gap"

    def __init__(self, min_gap_hours: float = 3.0, yellow_gap_hours: float = 24.0,
                 profile_days: int = 14, min_profile_days: int = 7, usual_fraction: float = 0.7,
                 worn_minutes_per_hour: int = 10, cooldown_hours: float = 1.0,
                 lateness_s: float = 600, tz_offset_min: int = 0) -> None:
        self.min_gap_hours = min_gap_hours
        self.yellow_gap_hours = yellow_gap_hours
        self.profile_days = profile_days
        self.min_profile_days = min_profile_days
        self.usual_fraction = usual_fraction
        self.worn_minutes_per_hour = worn_minutes_per_hour
        self.cooldown_hours = cooldown_hours
        super().__init__(lateness_s, tz_offset_min)
        self.days_ = np.zeros(profile_days, np.uint32)  # ring of 24-bit worn-hour masks
        self.n_days_ = 0
        self.day_: int | None = None  # local day being recorded
        self.day_mask_ = 0
        self.hour_worn_ = np.zeros(24, np.int16)  # worn minutes per hour of the current day
        self.usual_ = np.zeros(24, bool)
        self.last_worn_: int | None = None  # last minute with heart rate
        self.gap_usual_min_ = 0  # usual minutes in the current gap so far
        self.episode_ = Episode(int(cooldown_hours * HOUR_MS))

    def _roll_day(self, new_day: int) -> None:
        if self.day_ is not None:
            mask = 0
            for h in np.flatnonzero(self.hour_worn_ >= self.worn_minutes_per_hour).tolist():
                mask |= 1 << h
            # Days between (no data at all) are recorded as not worn.
            for _ in range(min(new_day - self.day_, self.profile_days)):
                self.days_[self.n_days_ % self.profile_days] = mask
                self.n_days_ += 1
                mask = 0
            n = min(self.n_days_, self.profile_days)
            if n >= self.min_profile_days:
                counts = np.zeros(24)
                for m in self.days_[:n].tolist():
                    counts += _bits(m)
                self.usual_ = counts / n >= self.usual_fraction
        self.day_ = new_day
        self.hour_worn_ = np.zeros(24, np.int16)

    def _step(self, frame: MinuteFrame) -> list[Event]:
        lm = self._local_minutes(frame)
        day = lm // 1440
        worn = frame.hr_n > 0
        if self.last_worn_ is None:
            if not worn.any():
                return []
            first = int(np.argmax(worn))  # ignore the time before the first worn minute
            frame = MinuteFrame(frame.start + first, frame.hr_sum[first:], frame.hr_n[first:],
                                frame.steps[first:], frame.activity[first:])
            lm, day, worn = lm[first:], day[first:], worn[first:]
            self.last_worn_ = frame.start - 1
            self._roll_day(int(day[0]))
        events: list[Event] = []
        # One pass per local day, since the profile changes at midnight.
        cuts = np.flatnonzero(np.diff(day)) + 1
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), len(worn)], strict=True):
            d = int(day[lo])
            if d != self.day_:
                self._roll_day(d)
            hod = (lm[lo:hi] % 1440) // 60
            w = worn[lo:hi]
            np.add.at(self.hour_worn_, hod[w], 1)
            usual = self.usual_[hod]
            self._gaps(frame.start + lo, w, usual, events)
        return events

    def _gaps(self, start: int, worn: np.ndarray, usual: np.ndarray, events: list[Event]) -> None:
        """Advance the gap state over one day's minutes (vectorised: loops only over gaps
        long enough to matter)."""
        assert self.last_worn_ is not None
        n = worn.shape[0]
        levels = ((int(self.min_gap_hours * 60), "info"), (int(self.yellow_gap_hours * 60), "yellow"))
        need = levels[0][0]
        if n and not self.episode_.is_open and self.gap_usual_min_ < need and worn.all():
            # the common case: every minute worn, no gap that matters: it ends any gap so far
            self.last_worn_ = start + n - 1
            self.gap_usual_min_ = 0
            return
        worn_idx = np.flatnonzero(worn)
        cu = np.concatenate([[0], np.cumsum(usual, dtype=np.int64)])
        # Unworn runs [lo, hi): before the first worn minute (continuing the current gap),
        # between worn minutes, and after the last one (still open at the end).
        los = np.concatenate([[0], worn_idx + 1])
        his = np.concatenate([worn_idx, [n]])
        counts = cu[his] - cu[los]
        carried = np.zeros(los.shape[0], np.int64)
        carried[0] = self.gap_usual_min_
        matter = np.flatnonzero(carried + counts >= need)
        if self.episode_.is_open:
            matter = np.union1d(matter, [0])
        for j in matter.tolist():
            lo, hi = int(los[j]), int(his[j])
            before = int(carried[j])
            total = before + int(counts[j])
            gap_start = (self.last_worn_ + 1 if j == 0 else start + int(worn_idx[j - 1]) + 1) * MINUTE_MS
            if j > 0:
                self.last_worn_ = start + int(worn_idx[j - 1])
            seg = usual[lo:hi]
            for level, severity in levels:
                if before < level <= total:
                    # the minute the gap crossed this level: the same however it is cut
                    hit = start + lo + int(np.flatnonzero(seg)[level - before - 1])
                    at = (hit + 1) * MINUTE_MS
                    ev = self.episode_.raise_(self.name, gap_start, at, severity,
                                              self._evidence(gap_start, at, level))
                    if ev is not None:
                        events.append(ev)
            if hi < n and self.episode_.is_open:  # heart rate is back: the gap is over
                m = (start + hi) * MINUTE_MS
                self.episode_.extend(m)
                ev = self.episode_.close(self.name, m, self._evidence(gap_start, m, total))
                if ev is not None:
                    events.append(ev)
        if worn_idx.size:
            self.last_worn_ = start + int(worn_idx[-1])
            self.gap_usual_min_ = int(counts[-1])
        else:
            self.gap_usual_min_ += int(counts[0])

    def _evidence(self, start: int, end: int, usual_min: int) -> dict:
        return {
            "gap_hours": round((end - start) / HOUR_MS, 2),
            "usual_hours_missed": round(usual_min / 60, 2),
            "threshold_hours": float(self.min_gap_hours),
            "usual_hours_of_day": np.flatnonzero(self.usual_).tolist(),
            "profile_days": int(min(self.n_days_, self.profile_days)),
        }
