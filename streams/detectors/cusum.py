"""CuSum over resting heart rate residuals (Mishra et al. 2020, Nature Biomedical Engineering).

Published definition: resting heart rate = heart rate where the steps of the
trailing 12 minutes sum to zero; hourly residuals are standardised against a
28-day baseline *for that hour of day* and clipped to +-4; the one-sided CuSum
``W_t = max(0, W_{t-1} + z_t - r)`` uses ``r`` = half the baseline's 90th percentile
of z; an alarm is raised when ``W_t`` is beyond what the baseline itself produces
with p < 0.01 (an empirical null: the 99th percentile of the CuSum run over the
baseline's own residuals); red when the alarm lasts more than 48 hours. Only days
without an alarm feed the baseline.

Departure from the paper, against alert fatigue: an alarm reaches the care team
(yellow) only once it has lasted ``yellow_after_hours`` (24); with 1 it reports every
alarm hour as the paper's real-time warnings do, which at p < 0.01 per hour means
about one false warning every four days per person.

Recovery (restart after a signal with the in-control level re-estimated, the usual
CUSUM practice: Page 1954, Biometrika; Montgomery, *Introduction to Statistical
Quality Control*, the tabular CUSUM): with only non-alarm days feeding the baseline, a
lasting change (resting heart rate can stay raised for weeks after an infection,
Radin et al. 2021, JAMA Network Open) kept the alarm red for 54 and 57 days on
real data. Here, once an alarm has lasted ``rebaseline_days`` days, the baseline
restarts from the days since the alarm began (the new level), ``W`` is reset to 0
and the episode closes.

Here: an hour counts with at least ``min_samples`` resting samples; the baseline is
the last ``baseline_days`` complete non-alarm days and scoring starts once
``min_baseline_days`` of them exist (after a re-baseline: ``rebaseline_days``); the
statistics are refreshed at each local midnight. Hours without data leave ``W``
unchanged. The baseline days are kept as hourly means rounded to 0.5 bpm (one byte
an hour: the patient's state stays under 2 KB); the hour being scored is exact.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from streams.detectors.base import (
    HOUR_MS,
    HR_SCALE,
    Detector,
    Episode,
    Event,
    MinuteFrame,
    _r,
)


def cusum_path(z: np.ndarray, r: float) -> np.ndarray:
    """W_t = max(0, W_{t-1} + z_t - r) from W_0 = 0 (NaN z leaves W unchanged).

    Vectorised through Lindley's identity: with S the running sum of the increments,
    W_t = S_t - min(0, min_{k<=t} S_k).
    """
    inc = np.where(np.isnan(z), 0.0, z - r)
    s = np.cumsum(inc)
    return s - np.minimum(np.minimum.accumulate(s), 0.0)


class CuSumRHR(Detector):
    """One-sided CuSum of hourly resting heart rate against an hour-of-day baseline.

    >>> import numpy as np
    >>> from streams.detectors.base import Samples, HEART_RATE
    >>> rng = np.random.default_rng(0)
    >>> t = 19_000 * 86_400_000 + np.arange(0, 40 * 1440, 2) * 60_000   # 40 days, every 2 min
    >>> hr = 62 + rng.normal(0, 2, t.size) + np.where(t >= t[0] + 35 * 86_400_000, 9.0, 0.0)
    >>> det = CuSumRHR(lateness_s=0)
    >>> events = det.update(Samples.from_arrays(HEART_RATE, t, value=hr))
    >>> [(e.state, e.severity) for e in events]
    [('open', 'yellow'), ('update', 'red')]
    """

    name: ClassVar[str] = "cusum_rhr"

    def __init__(self, rest_window_min: int = 12, baseline_days: int = 28,
                 min_baseline_days: int = 14, min_samples: int = 3, clip_z: float = 4.0,
                 null_quantile: float = 0.99, yellow_after_hours: int = 24, red_after_hours: int = 48,
                 min_sd_bpm: float = 1.0, cooldown_hours: int = 24, rebaseline_days: int = 7,
                 lateness_s: float = 600, tz_offset_min: int = 0) -> None:
        self.rest_window_min = rest_window_min
        self.baseline_days = baseline_days
        self.min_baseline_days = min_baseline_days
        self.min_samples = min_samples
        self.clip_z = clip_z
        self.null_quantile = null_quantile
        self.yellow_after_hours = yellow_after_hours
        self.red_after_hours = red_after_hours
        self.min_sd_bpm = min_sd_bpm
        self.cooldown_hours = cooldown_hours
        self.rebaseline_days = rebaseline_days
        super().__init__(lateness_s, tz_offset_min)
        self.steps_tail_ = np.zeros(max(rest_window_min - 1, 0), np.int8)
        self.hour_: int | None = None  # local hour number being accumulated
        self.hour_sum_ = 0
        self.hour_n_ = 0
        self.day_: int | None = None  # local day number of ``today_``
        self.today_ = np.full(24, np.nan, np.float32)
        self.today_alarm_ = False
        # every complete day, hourly means in half-bpm steps from 20 bpm (0: no value)
        self.ring_ = np.zeros((baseline_days, 24), np.uint8)
        self.ring_days_ = 0  # how many days were ever pushed
        self.excluded_ = 0  # bit i: ring slot i is not part of the baseline (an alarm day)
        self.rebased_ = False  # a re-baseline happened: fewer days suffice
        self.w_ = 0.0
        self.alarm_since_ = -1  # first hour (UTC ms) of the current alarm
        self.episode_ = Episode(cooldown_hours * HOUR_MS)
        self._derive()

    _derived: ClassVar[tuple[str, ...]] = ("mu_", "sd_", "r_", "threshold_")

    def _derive(self) -> None:
        """The baseline statistics, from the ring (recomputed, never stored)."""
        self.mu_ = np.full(24, np.nan)
        self.sd_ = np.full(24, np.nan)
        self.r_ = float("nan")
        self.threshold_ = float("nan")
        self._refit()

    # -- baseline ---------------------------------------------------------------------
    def _close_day(self) -> None:
        if np.isfinite(self.today_).sum() >= 6:
            slot = self.ring_days_ % self.baseline_days
            q = np.where(np.isfinite(self.today_),
                         np.clip(np.rint((self.today_ - 20.0) * 2), 1, 255), 0)
            self.ring_[slot] = q.astype(np.uint8)
            bit = 1 << slot
            self.excluded_ = (self.excluded_ | bit) if self.today_alarm_ else (self.excluded_ & ~bit)
            self.ring_days_ += 1
            self._refit()
        self.today_ = np.full(24, np.nan, np.float32)
        self.today_alarm_ = False

    def _rebaseline(self) -> None:
        """The alarm has lasted ``rebaseline_days``: its days are the new baseline."""
        n_days = min(self.ring_days_, self.baseline_days)
        alarm_days = max(1, min(n_days, int(self.rebaseline_days)))
        keep = 0
        for i in range(alarm_days):  # the most recent days (those of the alarm)
            keep |= 1 << ((self.ring_days_ - 1 - i) % self.baseline_days)
        self.excluded_ = ((1 << self.baseline_days) - 1) & ~keep
        self.rebased_ = True
        self.w_ = 0.0
        self.alarm_since_ = -1
        self.today_alarm_ = False
        self._refit()

    def _refit(self) -> None:
        n_days = min(self.ring_days_, self.baseline_days)
        # The usable ring days in chronological order (oldest first), so the null CuSum runs in time.
        order = [s for s in ((self.ring_days_ - n_days + i) % self.baseline_days for i in range(n_days))
                 if not (self.excluded_ >> s) & 1]
        need = min(self.min_baseline_days, self.rebaseline_days) if self.rebased_ else self.min_baseline_days
        if len(order) < need:
            return
        q = self.ring_[order].astype(np.float64)
        b = np.where(q > 0, q / 2 + 20.0, np.nan)
        ok = np.isfinite(b)
        cnt = ok.sum(axis=0)
        mu = np.where(cnt > 0, np.where(ok, b, 0).sum(axis=0) / np.maximum(cnt, 1), np.nan)
        var = np.where(cnt > 1, (np.where(ok, b - mu, 0) ** 2).sum(axis=0) / np.maximum(cnt - 1, 1), np.nan)
        sd = np.maximum(np.sqrt(var), self.min_sd_bpm)
        z = np.clip((b - mu) / sd, -self.clip_z, self.clip_z).ravel()
        zf = z[np.isfinite(z)]
        if zf.size < 24:
            return
        r = 0.5 * float(np.percentile(zf, 90))
        w = cusum_path(z, r)
        self.mu_, self.sd_, self.r_ = mu, sd, r
        self.threshold_ = max(float(np.quantile(w, self.null_quantile)), 1.0)

    # -- stream -----------------------------------------------------------------------
    def _step(self, frame: MinuteFrame) -> list[Event]:
        active, self.steps_tail_ = frame.rest_counts(self.steps_tail_, max(int(self.rest_window_min), 1))
        lm = self._local_minutes(frame)
        hour = lm // 60
        rest = (frame.hr_n > 0) & (active == 0)
        if self.hour_ is None:
            self.hour_ = int(hour[0])
        events: list[Event] = []
        # Per-hour integer sums over the frame, then the hours in order.
        h0 = int(hour[0])
        idx = hour - h0
        sums = np.bincount(idx, weights=np.where(rest, frame.hr_sum, 0).astype(np.float64))
        ns = np.bincount(idx, weights=np.where(rest, frame.hr_n, 0).astype(np.float64))
        last_hour_complete = (int(lm[-1]) + 1) // 60  # hours < this are complete
        for k in range(sums.shape[0]):
            h = h0 + k
            self.hour_sum_ += int(sums[k])
            self.hour_n_ += int(ns[k])
            if h < last_hour_complete:
                self._finish_hour(h, events)
        return events

    def _finish_hour(self, h: int, events: list[Event]) -> None:
        s, n = self.hour_sum_, self.hour_n_
        self.hour_sum_ = self.hour_n_ = 0
        self.hour_ = h + 1
        day, hod = divmod(h, 24)
        if self.day_ is None:
            self.day_ = day
        if day != self.day_:
            self._close_day()
            self.day_ = day
            if (self.alarm_since_ >= 0 and self.rebaseline_days > 0
                    and h * HOUR_MS - self._tz_ms - self.alarm_since_ >= self.rebaseline_days * 86_400_000):
                at = (h + 1) * HOUR_MS - self._tz_ms  # known once this hour is complete
                ev = self.episode_.close(self.name, at, {"rebaselined": True,
                                                          "alarm_days": int(self.rebaseline_days)})
                self._rebaseline()
                if ev is not None:
                    events.append(ev)
        if n < self.min_samples:
            return
        x = s / n / HR_SCALE
        self.today_[hod] = x
        if not np.isfinite(self.threshold_) or not np.isfinite(self.mu_[hod]):
            return
        z = float(np.clip((x - self.mu_[hod]) / self.sd_[hod], -self.clip_z, self.clip_z))
        self.w_ = max(0.0, self.w_ + z - self.r_)
        start_ms = h * HOUR_MS - self._tz_ms
        end_ms = start_ms + HOUR_MS
        evidence = {
            "cusum": _r(self.w_, 2), "threshold": _r(self.threshold_, 2), "r": _r(self.r_, 3),
            "hour_resting_hr_bpm": _r(x), "baseline_bpm": _r(self.mu_[hod]),
            "baseline_sd_bpm": _r(self.sd_[hod], 2), "z": _r(z, 2),
            "baseline_days": int(min(self.ring_days_, self.baseline_days)),
        }
        if self.w_ > self.threshold_:
            self.today_alarm_ = True
            if self.alarm_since_ < 0:
                self.alarm_since_ = start_ms
            hours = (end_ms - self.alarm_since_) // HOUR_MS
            evidence["alarm_hours"] = int(hours)
            if hours < self.yellow_after_hours:
                return
            severity = "red" if hours > self.red_after_hours else "yellow"
            ev = self.episode_.raise_(self.name, self.alarm_since_, end_ms, severity, evidence)
            if ev is not None:
                events.append(ev)
            else:
                self.episode_.extend(end_ms)
        elif self.alarm_since_ >= 0:
            self.alarm_since_ = -1
            ev = self.episode_.close(self.name, end_ms, evidence)
            if ev is not None:
                events.append(ev)
