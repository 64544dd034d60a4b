"""One illness episode per patient from the resting-heart-rate detectors.

NightSignal (Alavi et al. 2022, Nature Medicine) and CuSum (Mishra et al. 2020,
Nature Biomedical Engineering) watch the same physiology, resting heart rate above
the patient's own normal. Alerting on each gave a care team two alerts per illness
and, through CuSum's weeks-long reds, 7.94 false alert-days per person-month. Here
they are *contributors*: their events are combined into one patient-level episode,
``illness_rhr``, whose evidence carries each contributor's latest evidence.

The combination rule (a vote; the defaults come from the operating curve of
``evaluate_detectors --sweep``, see docs/detectors.md):

* each contributor's current level counts: NightSignal yellow 1, red 2 (the published
  two-level alert: two consecutive nights >= 3 / >= 4 bpm over the median of earlier
  nights), red on ``confirm_nights`` nights in a row 3; CuSum yellow ``cusum_weight``,
  red 2 x ``cusum_weight``;
* the episode opens when the score reaches ``open_score`` with new evidence (by
  default 2.5: NightSignal red *confirmed* by a CuSum alarm, or by a third red night),
  is red from ``red_score``, escalates when the score crosses it, and closes when the
  score falls under ``close_score`` (the contributors back to normal);
* it also closes after ``stale_days`` without new evidence (a contributor raised or
  escalated, or a night more elevated than any before in NightSignal's episode): a
  plateau, or a CuSum alarm that merely persists, is no news;
* a budget: at most ``max_new_per_30d`` new episodes in any 30 days unless the new
  one is more severe than those already raised; an onset over the budget re-opens the
  last episode (the same queue item comes back, with the new evidence) instead of
  adding one, so a care team still hears of it; a new onset within ``cooldown_days``
  of a close re-opens the same episode too.

Contributor events are ordered by the event time at which each happened, so any cut
of the stream into batches gives the same combined events (the contract).
"""

from __future__ import annotations

from typing import Any, ClassVar

from streams.detectors.base import (
    DAY_MS,
    SEVERITY_RANK,
    Detector,
    Episode,
    Event,
    MinuteFrame,
    Samples,
)
from streams.detectors.cusum import CuSumRHR
from streams.detectors.nightsignal import NightSignal

CONTRIBUTORS = ("nightsignal_rhr", "cusum_rhr")
#: NightSignal inside the episode: scored from 14 earlier nights, not 7 (fewer alarms on an
#: immature baseline; the development curve in docs/detectors.md)
NIGHTSIGNAL_DEFAULTS = {"min_baseline_nights": 14, "min_night_hours": 2, "lapse_nights": 3}


class IllnessEpisode(Detector):
    """NightSignal and CuSum combined into one illness episode per patient.

    >>> import numpy as np
    >>> from streams.detectors.base import Samples, HEART_RATE
    >>> day0 = 19_000 * 86_400_000
    >>> days = np.repeat(np.arange(19), 180)                      # 3 hours a night
    >>> t = day0 + days * 86_400_000 + np.tile(np.arange(180), 19) * 60_000
    >>> hr = np.where((days >= 14) & (days < 17), 66.0, 60.0)   # three nights 6 bpm up
    >>> det = IllnessEpisode(lateness_s=0)
    >>> out = det.update(Samples.from_arrays(HEART_RATE, t, value=hr))
    >>> out += det.advance_to(day0 + 19 * 86_400_000)
    >>> [(e.state, e.severity, sorted(e.evidence["contributors"])) for e in out]
    [('open', 'red', ['nightsignal_rhr']), ('closed', 'red', [])]
    """

    name: ClassVar[str] = "illness_rhr"

    def __init__(self, open_score: float = 2.5, red_score: float = 3, close_score: float = 1,
                 cusum_weight: float = 0.5, confirm_nights: int = 3,
                 stale_days: float = 7, max_new_per_30d: int = 1, cooldown_days: float = 3,
                 report_contributors: bool = False, nightsignal: dict | None = None,
                 cusum: dict | None = None, lateness_s: float = 600, tz_offset_min: int = 0) -> None:
        self.open_score = open_score
        self.red_score = red_score
        self.close_score = close_score
        self.cusum_weight = cusum_weight
        self.confirm_nights = confirm_nights
        self.stale_days = stale_days
        self.max_new_per_30d = max_new_per_30d
        self.cooldown_days = cooldown_days
        self.report_contributors = report_contributors
        self.nightsignal = nightsignal
        self.cusum = cusum
        super().__init__(lateness_s, tz_offset_min)
        self.contributors_: list[Detector] = [
            NightSignal(**{**NIGHTSIGNAL_DEFAULTS, **(nightsignal or {})}, lateness_s=lateness_s,
                        tz_offset_min=tz_offset_min),
            CuSumRHR(**(cusum or {}), lateness_s=lateness_s, tz_offset_min=tz_offset_min),
        ]
        for c in self.contributors_:
            c.bins_ = None  # binned by this detector (or by the monitor above it)
        self.levels_ = [0, 0]  # each contributor's current severity rank
        self.starts_ = [-1, -1]  # each contributor's episode window start
        self.evidence_: list[dict | None] = [None, None]  # their latest evidence, while raised
        self.last_news_ = -1  # event time of the latest new evidence
        self.peak_ = 0.0  # the highest nightly rise (bpm) of NightSignal's current episode
        self.latched_ = False  # closed as stale or held by the budget: wait for news
        self.opens_: list[tuple[int, int]] = []  # (time, severity rank) of opens in 30 days
        self.suppressed_ = 0  # onsets over the budget (merged into the last episode)
        self.episode_ = Episode(int(cooldown_days * DAY_MS))

    # -- the contributors --------------------------------------------------------------
    def contributor(self, name: str) -> Detector:
        for c in self.contributors_:
            if c.name == name:
                return c
        raise KeyError(name)

    def _ingest(self, samples: Samples) -> None:
        for c in self.contributors_:
            c._ingest(samples)

    def _step(self, frame: MinuteFrame) -> list[Event]:
        events: list[Event] = []
        for c in self.contributors_:
            events.extend(c._step(frame))
        return self.combine(events, frame.stop * 60_000)

    def combine(self, events: list[Event], now_ms: int) -> list[Event]:
        """Contributor events (any order) up to event time ``now_ms`` -> illness events."""
        index = {c.name: i for i, c in enumerate(self.contributors_)}
        pending = sorted(((e.time, index[e.detector], k, e) for k, e in enumerate(events)),
                         key=lambda x: x[:3])  # each contributor's own order kept
        out: list[Event] = []
        for t, i, _, e in pending:
            self._expire(t - 1, out)
            self._on(i, e, out)
            if self.report_contributors:
                out.append(e)
        self._expire(now_ms, out)
        return out

    # -- the rule ----------------------------------------------------------------------
    @staticmethod
    def _red_run(e: Event) -> int:
        """How many of NightSignal's latest nights in a row are at or over its red delta."""
        red = e.evidence.get("red_delta_bpm")
        run = 0
        for night in reversed(e.evidence.get("nights") or []):
            if red is None or (night.get("delta_bpm") or 0.0) < red:
                break
            run += 1
        return run

    def score(self) -> float:
        return self.levels_[0] + float(self.cusum_weight) * self.levels_[1]

    def _severity(self, score: float) -> str:
        return "red" if score >= self.red_score else "yellow"

    def _evidence(self, score: float, **extra: Any) -> dict:
        contributors = {c.name: {"severity": "red" if lvl >= 2 else "yellow", "points": lvl,
                                 "window_start": start, "evidence": ev}
                        for c, lvl, start, ev in zip(self.contributors_, self.levels_, self.starts_,
                                                     self.evidence_, strict=True) if lvl > 0}
        return {
            "score": round(score, 2), "open_score": float(self.open_score),
            "red_score": float(self.red_score),
            "rule": (f"NightSignal yellow 1, red 2, red {self.confirm_nights} nights in a row 3; CuSum "
                     f"yellow {self.cusum_weight:g}, red {2 * self.cusum_weight:g}; open at "
                     f"{self.open_score:g}, red at {self.red_score:g}, closed under {self.close_score:g}"),
            "contributors": contributors,
            "last_new_evidence": self.last_news_,
            "merged_by_budget": self.suppressed_,
            **extra,
        }

    def _on(self, i: int, e: Event, out: list[Event]) -> None:
        level = 0 if e.state == "closed" else SEVERITY_RANK[e.severity]
        if e.detector == "nightsignal_rhr" and level == 2 and self._red_run(e) >= self.confirm_nights:
            level = 3  # red confirmed over nights
        # News: a contributor raised or escalated, or a night more elevated than any before
        # in NightSignal's episode. A plateau (the same raised level night after night, a
        # CuSum alarm that persists) is not news.
        news = e.state != "closed"
        if e.detector == "nightsignal_rhr" and news:
            nights = e.evidence.get("nights") or [{}]
            delta = nights[-1].get("delta_bpm") or 0.0
            if e.state == "update" and level <= self.levels_[i]:
                news = delta > self.peak_
            self.peak_ = delta if e.state == "open" else max(self.peak_, delta)
        self.levels_[i] = level
        self.starts_[i] = e.window_start if level else -1
        self.evidence_[i] = _compact(e.evidence) if level else None
        if news:
            self.last_news_ = e.time
            self.latched_ = False
        score = self.score()
        ep = self.episode_
        t = e.time
        if ep.is_open:
            if score < self.close_score:
                ev = ep.close(self.name, t, self._evidence(score, closed_by=e.detector))
            else:
                ev = ep.raise_(self.name, ep.start, t, self._severity(score), self._evidence(score))
                if ev is None and news:
                    ev = ep.touch(self.name, t, self._evidence(score))
            if ev is not None:
                out.append(ev)
            return
        if not news or self.latched_ or score < self.open_score:
            return
        severity = self._severity(score)
        start = min(s for s in self.starts_ if s >= 0)
        reopen = ep.closed_at >= 0 and start - ep.closed_at <= ep.cooldown_ms
        merge = False
        if not reopen:
            self.opens_ = [(ot, r) for ot, r in self.opens_ if t - ot < 30 * DAY_MS]
            if (len(self.opens_) >= self.max_new_per_30d
                    and SEVERITY_RANK[severity] <= max(r for _, r in self.opens_)):
                # over the budget: the last episode comes back (same queue item), no new one
                self.suppressed_ += 1
                merge = True
        ev = ep.raise_(self.name, start, t, severity, self._evidence(score), merge=merge)
        if ev is not None:
            if ev.state == "open":
                self.opens_.append((t, SEVERITY_RANK[severity]))
            out.append(ev)

    def _expire(self, now: int, out: list[Event]) -> None:
        """Close an episode that has had no new evidence for ``stale_days``."""
        ep = self.episode_
        if not ep.is_open or self.last_news_ < 0:
            return
        due = self.last_news_ + int(self.stale_days * DAY_MS)
        if due <= now:
            ev = ep.close(self.name, due, self._evidence(
                self.score(), closed_by=f"no new evidence for {self.stale_days:g} days"))
            self.latched_ = True
            if ev is not None:
                out.append(ev)


def _compact(evidence: dict) -> dict:
    """A contributor's evidence as the episode keeps it: the last 3 nights, no fixed text.

    Kept in the patient's state while the contributor is raised, so it must stay small.
    """
    out = {k: v for k, v in evidence.items() if k != "window"}
    if isinstance(out.get("nights"), list):
        out["nights"] = out["nights"][-3:]
    return out
