"""NightSignal: nightly resting heart rate against the patient's own running median.

Published definition (Alavi et al. 2022, Nature Medicine; StanfordBioinformatics/
wearable-infection): resting heart rate of a night = mean heart rate from 00:00 to
06:59 local time over minutes with zero steps; baseline = median of all earlier
nights; *yellow* when two consecutive nights are at least 3 bpm above the baseline,
*red* when two consecutive nights are at least 4 bpm above; evaluated at 07:00.

Here: a minute with no step record counts as zero steps (as in the published code's
merge); a night needs ``min_samples`` resting heart-rate samples, spread over at least
``min_night_hours`` of the window (counted in 10-minute slots that hold a resting
sample), to count: a night of a few minutes (a watch put on at 06:40, a burst of
readings while awake) is no measure of resting heart rate, and on an Apple Watch such
nights jumped 20+ bpm; nights
are consecutive calendar nights (a night without data breaks a streak); scoring
starts once ``min_baseline_nights`` earlier nights exist. The baseline keeps the last
``max_baseline_nights`` (120) nights, in tenths of a bpm, so a patient's state stays
bounded (the published rule takes all earlier nights). An episode stays one alert
while nights stay elevated (each further elevated night is an ``update`` event: new
evidence) and closes on the first night under the yellow delta, or, with
``lapse_nights`` set, once that many nights have passed without an alerting night (a
night without enough data is no alert: a raised state must not outlive its evidence).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from streams.detectors.base import (
    DAY_MS,
    HR_SCALE,
    Detector,
    Episode,
    Event,
    MinuteFrame,
    _r,
)

SLOT_MIN = 10  # coverage of a night is counted in 10-minute slots (device-agnostic)
_TRUE = np.ones(1, bool)


def day_label(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


class NightSignal(Detector):
    """Nightly resting heart rate versus the median of all earlier nights.

    >>> import numpy as np
    >>> from streams.detectors.base import Samples, HEART_RATE
    >>> day0 = 19_000 * 86_400_000
    >>> days = np.repeat(np.arange(12), 60)
    >>> t = day0 + days * 86_400_000 + np.tile(np.arange(60), 12) * 60_000
    >>> hr = np.where(days >= 10, 66.0, 60.0)       # the last two nights 6 bpm up
    >>> det = NightSignal(lateness_s=0)
    >>> out = det.update(Samples.from_arrays(HEART_RATE, t, value=hr))
    >>> out += det.advance_to(day0 + 12 * 86_400_000)
    >>> [(e.state, e.severity, e.evidence["baseline_bpm"]) for e in out]
    [('open', 'red', 60.0)]
    """

    name: ClassVar[str] = "nightsignal_rhr"

    def __init__(self, yellow_delta: float = 3.0, red_delta: float = 4.0,
                 consecutive_nights: int = 2, night_start_hour: int = 0, night_end_hour: int = 7,
                 min_samples: int = 10, min_baseline_nights: int = 7, cooldown_nights: int = 1,
                 max_baseline_nights: int = 120, min_night_hours: float = 0.0,
                 lapse_nights: int = 0, lateness_s: float = 600, tz_offset_min: int = 0) -> None:
        self.yellow_delta = yellow_delta
        self.red_delta = red_delta
        self.consecutive_nights = consecutive_nights
        self.night_start_hour = night_start_hour
        self.night_end_hour = night_end_hour
        self.min_samples = min_samples
        self.min_baseline_nights = min_baseline_nights
        self.cooldown_nights = cooldown_nights
        self.max_baseline_nights = max_baseline_nights
        self.min_night_hours = min_night_hours
        self.lapse_nights = lapse_nights
        super().__init__(lateness_s, tz_offset_min)
        self.next_night_: int | None = None  # local day number of the next night to evaluate
        # day -> [milli-bpm sum, samples, 10-minute slots with a sample, the last such slot]
        self.acc_: dict[int, list[int]] = {}
        # earlier nights' resting HR in tenths of a bpm, the last ``max_baseline_nights``
        self.history_ = np.zeros(0, np.uint16)
        self.recent_: list[tuple[int, float, float]] = []  # (day, rhr, delta) of the streak
        self.yellow_streak_ = 0
        self.red_streak_ = 0
        self.last_alert_night_ = -1  # local day number of the latest alerting night
        self.episode_ = Episode(cooldown_nights * DAY_MS)

    def _night_bounds(self, day: int) -> tuple[int, int]:
        """UTC epoch ms of a night's window."""
        base = day * DAY_MS - self._tz_ms
        return (base + self.night_start_hour * 3_600_000, base + self.night_end_hour * 3_600_000)

    def baseline(self) -> float:
        if self.history_.shape[0] < self.min_baseline_nights:
            return float("nan")
        return float(np.median(self.history_)) / 10

    def _night_in(self, frame: MinuteFrame) -> bool:
        """Whether any minute of the frame is in the night window (scalars only)."""
        a, b = self.night_start_hour * 60, self.night_end_hour * 60
        if not 0 <= a < b <= 1440:
            return True  # not a plain window within one day: look minute by minute
        m0 = (frame.start + int(self.tz_offset_min)) % 1440
        return a <= m0 < b or (a - m0) % 1440 <= len(frame) - 1

    def _step(self, frame: MinuteFrame) -> list[Event]:
        if not len(frame):
            return []
        if not self._night_in(frame):  # a daytime frame (most of them): nothing to add up
            local0 = frame.start + int(self.tz_offset_min)
            return self._nights_done(local0 // 1440, local0 + len(frame) - 1)
        lm = self._local_minutes(frame)
        day = lm // 1440
        mod = lm % 1440
        sel = ((mod >= self.night_start_hour * 60) & (mod < self.night_end_hour * 60)
               & (frame.hr_n > 0) & ~frame.moving)
        if sel.any():
            u, inv = np.unique(day[sel], return_inverse=True)
            sums = np.bincount(inv, weights=frame.hr_sum[sel].astype(np.float64))
            ns = np.bincount(inv, weights=frame.hr_n[sel].astype(np.float64))
            slot = lm[sel] // SLOT_MIN  # 10-minute slots; minutes arrive in order
            # (np.concatenate, not np.r_: the index trick costs ~10 µs a call, at every upload)
            first = np.concatenate((_TRUE, slot[1:] != slot[:-1]))
            slots = np.bincount(inv[first], minlength=len(u))
            change = inv[1:] != inv[:-1]
            first_slot = slot[np.concatenate((_TRUE, change))]
            last_slot = slot[np.concatenate((change, _TRUE))]
            for d, s, n, k, a, b in zip(u.tolist(), sums.tolist(), ns.tolist(), slots.tolist(),
                                        first_slot.tolist(), last_slot.tolist(), strict=True):
                acc = self.acc_.setdefault(d, [0, 0, 0, -1])
                acc[0] += int(s)
                acc[1] += int(n)
                acc[2] += int(k) - (a == acc[3])  # a slot split between two frames counts once
                acc[3] = int(b)
        return self._nights_done(int(day[0]), int(lm[-1]))

    def _nights_done(self, first_day: int, last_minute: int) -> list[Event]:
        """Evaluate the nights complete by the local minute ``last_minute``."""
        if self.next_night_ is None:
            self.next_night_ = first_day
        last_done = (last_minute + 1 - self.night_end_hour * 60) // 1440
        events: list[Event] = []
        while self.next_night_ <= last_done:
            self._evaluate(self.next_night_, events)
            self.next_night_ += 1
        return events

    def _evaluate(self, d: int, events: list[Event]) -> None:
        s, n, slots, _ = self.acc_.pop(d, (0, 0, 0, -1))
        if n < self.min_samples or slots * SLOT_MIN < self.min_night_hours * 60:
            self.yellow_streak_ = self.red_streak_ = 0
            self.recent_ = []
            self._lapse(d, float("nan"), events)
            return
        rhr = s / n / HR_SCALE
        base = self.baseline()
        keep = max(int(self.max_baseline_nights) - 1, 0)
        self.history_ = np.append(self.history_[len(self.history_) - keep:] if keep else self.history_[:0],
                                  np.uint16(min(round(rhr * 10), 65535)))
        if not np.isfinite(base):
            return
        delta = rhr - base
        start, end = self._night_bounds(d)
        if delta >= self.yellow_delta:
            self.yellow_streak_ += 1
            self.red_streak_ = self.red_streak_ + 1 if delta >= self.red_delta else 0
            self.recent_ = [*self.recent_, (d, rhr, delta)][-7:]
        else:
            self.yellow_streak_ = self.red_streak_ = 0
            ev = self.episode_.close(self.name, end, self._evidence(base, [(d, rhr, delta)]))
            self.recent_ = []
            if ev is not None:
                events.append(ev)
            return
        if self.yellow_streak_ >= self.consecutive_nights:
            severity = "red" if self.red_streak_ >= self.consecutive_nights else "yellow"
            first = d - self.yellow_streak_ + 1
            evidence = self._evidence(base, self.recent_)
            ev = self.episode_.raise_(self.name, self._night_bounds(first)[0], end, severity, evidence)
            if ev is None:  # one more elevated night: new evidence, reported as an update
                ev = self.episode_.touch(self.name, end, evidence)
            if ev is not None:
                events.append(ev)
            self.last_alert_night_ = d
        else:
            self._lapse(d, base, events)

    def _lapse(self, d: int, base: float, events: list[Event]) -> None:
        """Close an open episode after ``lapse_nights`` nights without an alerting night."""
        if (self.lapse_nights > 0 and self.episode_.is_open and self.last_alert_night_ >= 0
                and d - self.last_alert_night_ >= self.lapse_nights):
            ev = self.episode_.close(self.name, self._night_bounds(d)[1],
                                     {**self._evidence(base, []), "lapsed_nights": int(d - self.last_alert_night_)})
            if ev is not None:
                events.append(ev)

    def _evidence(self, base: float, nights) -> dict:
        return {
            "baseline_bpm": _r(base),
            "baseline_nights": int(self.history_.shape[0] - 1),
            "yellow_delta_bpm": float(self.yellow_delta),
            "red_delta_bpm": float(self.red_delta),
            "nights": [{"night": day_label(d), "resting_hr_bpm": _r(r), "delta_bpm": _r(x)}
                       for d, r, x in nights],
            "window": f"{self.night_start_hour:02d}:00-{self.night_end_hour - 1:02d}:59 local, zero-step minutes",
        }
