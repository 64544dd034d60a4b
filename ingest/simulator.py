"""A device simulator: a cohort of synthetic patients with known, injected episodes.

Each patient has a circadian heart rate (lower asleep, higher awake, raised by steps
and workouts), step bouts, workouts three times a week, nightly sleep in ~90-minute
cycles of light, deep and REM sleep with brief awakenings, HRV (RMSSD) during sleep,
and a watch taken off for a short charge each day. On top of that, three patients in
four get one episode with known times (the ground truth the detectors are scored on):

* ``high_hr_at_rest``: 25-40 minutes of heart rate 125-140 with no steps, daytime;
* ``elevated_rhr``: four nights with resting heart rate raised by 6-9 bpm (as in an
  infection), daytime heart rate raised a little too;
* ``short_sleep``: three nights in a row of 4-4.5 hours of sleep;
* ``wear_gap``: the watch taken off for 5-8 hours in the daytime.

Every fourth patient is a control with no episode. Everyone, controls included, also
lives through realistic nuisance that is not illness (``nuisance=True``, the default;
``SimulatedCohort.nuisance`` lists it):

* late nights: bedtime 2-3.5 h later (awake, resting minutes inside the night window);
* alcohol: a night's heart rate 3-8 bpm higher, sometimes two nights in a row (a
  weekend); nocturnal heart rate rises with the dose (Pietilä et al. 2018, JMIR
  Mental Health);
* travel across time zones: 4-7 days with sleep and activity shifted 3-7 hours
  (the device keeps the home time zone), the first two nights 2 bpm higher;
* heavy exercise: a 90-150 minute hard session, the next night 2-4 bpm higher;
* sensor noise: a few minutes a day of optical-sensor error (+-12 bpm) and dropped
  minutes.

The generation is vectorised per patient-day (numpy) and deterministic for a seed. ``simulate_cohort`` returns
DataFrames (for replays and backtests); ``iter_uploads`` cuts the same data into
device uploads for the ingest API (the ``simulate`` command pushes them over HTTP).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from scipy.signal import lfilter

MINUTE_MS = 60_000
DAY_MS = 86_400_000
EPISODE_KINDS = ("high_hr_at_rest", "elevated_rhr", "short_sleep", "wear_gap")
FIRST_EPISODE_DAY = 14  # baselines need two weeks of history first


@dataclass(frozen=True)
class Profile:
    """One synthetic patient's physiology and habits (all times are UTC hours)."""

    patient: int
    resting_hr: float
    sleep_start_h: float
    sleep_hours: float
    steps_per_day: float
    hrv_base: float
    workout_prob: float
    charge_hour: float


@dataclass(frozen=True)
class Episode:
    patient: int
    kind: str
    start_ms: int
    end_ms: int


@dataclass
class SimulatedCohort:
    profiles: list[Profile]
    frames: dict[int, pd.DataFrame] = field(default_factory=dict)
    episodes: pd.DataFrame = field(default_factory=pd.DataFrame)
    nuisance: pd.DataFrame = field(default_factory=pd.DataFrame)


NUISANCE_KINDS = ("late_night", "alcohol", "travel", "heavy_exercise", "sensor_noise")


def plan_nuisance(p: Profile, start_ms: int, days: int, seed: int) -> list[Episode]:
    """The patient's nuisance days (not illness), from a generator of their own."""
    rng = np.random.default_rng(seed * 7919 + p.patient)
    out: list[Episode] = []
    trip = None
    if days >= 16 and rng.random() < 0.35:
        first = int(rng.integers(7, days - 8))
        trip = (first, first + int(rng.integers(4, 8)))
        out.append(Episode(p.patient, "travel", start_ms + trip[0] * DAY_MS, start_ms + trip[1] * DAY_MS))
    d = 0
    while d < days:
        day_ms = start_ms + d * DAY_MS
        u = rng.random()
        if u < 0.10:
            out.append(Episode(p.patient, "late_night", day_ms + 18 * 3_600_000, day_ms + 32 * 3_600_000))
        elif u < 0.18:
            n = 2 if rng.random() < 0.3 else 1
            out.append(Episode(p.patient, "alcohol", day_ms + 18 * 3_600_000,
                               day_ms + (n - 1) * DAY_MS + 32 * 3_600_000))
            d += n - 1
        elif u < 0.23:
            out.append(Episode(p.patient, "heavy_exercise", day_ms + 15 * 3_600_000, day_ms + 32 * 3_600_000))
        d += 1
    return out


def _nuisance_at(nuisance: list[Episode], kind: str, t_ms: int) -> Episode | None:
    for e in nuisance:
        if e.kind == kind and e.start_ms <= t_ms < e.end_ms:
            return e
    return None


def make_profiles(n_patients: int, seed: int) -> list[Profile]:
    rng = np.random.default_rng(seed)
    return [
        Profile(
            patient=i + 1,
            resting_hr=float(rng.uniform(54, 72)),
            sleep_start_h=float(rng.uniform(22.0, 24.0) % 24),
            sleep_hours=float(rng.uniform(7.0, 8.2)),
            steps_per_day=float(rng.uniform(5000, 11000)),
            hrv_base=float(rng.uniform(30, 70)),
            workout_prob=float(rng.uniform(0.25, 0.5)),
            charge_hour=float(rng.uniform(18.5, 20.5)),
        )
        for i in range(n_patients)
    ]


def plan_episodes(profiles: list[Profile], start_ms: int, days: int, seed: int) -> list[Episode]:
    """Every fourth patient is a control; the others get one episode, kinds in turn."""
    rng = np.random.default_rng(seed + 1)
    episodes: list[Episode] = []
    if days < FIRST_EPISODE_DAY + 5:
        return episodes
    k = 0
    for p in profiles:
        if p.patient % 4 == 0:
            continue
        kind = EPISODE_KINDS[k % len(EPISODE_KINDS)]
        k += 1
        day = int(rng.integers(FIRST_EPISODE_DAY, days - 4))
        day_ms = start_ms + day * DAY_MS
        if kind == "high_hr_at_rest":
            s = day_ms + int(rng.uniform(10, 16) * 3_600_000) // MINUTE_MS * MINUTE_MS
            e = s + int(rng.integers(25, 41)) * MINUTE_MS
        elif kind == "wear_gap":
            s = day_ms + int(rng.uniform(9, 12) * 3_600_000) // MINUTE_MS * MINUTE_MS
            e = s + int(rng.uniform(5, 8) * 60) * MINUTE_MS
        else:
            # Night episodes start at the evening before `day` and last 4 (or 3) nights.
            nights = 4 if kind == "elevated_rhr" else 3
            s = day_ms - 6 * 3_600_000
            e = s + nights * DAY_MS
        episodes.append(Episode(p.patient, kind, s, e))
    return episodes


def _sleep_window(p: Profile, day_start_ms: int, short: bool, rng: np.random.Generator,
                  shift_h: float = 0.0) -> tuple[int, int]:
    """The night that starts on this day's evening (it may begin after midnight)."""
    hours = rng.uniform(4.0, 4.5) if short else p.sleep_hours + rng.normal(0, 0.3)
    start_h = p.sleep_start_h + rng.normal(0, 0.25) + (2.5 if short else 0) + shift_h
    if start_h < 12:
        start_h += 24  # after midnight: still this day's night
    s = day_start_ms + int(start_h * 3_600_000) // MINUTE_MS * MINUTE_MS
    return s, s + int(hours * 3_600_000) // MINUTE_MS * MINUTE_MS


def _stages(n_minutes: int, rng: np.random.Generator) -> list[tuple[int, int, str]]:
    """Sleep stage intervals (start minute, end minute, stage) in ~90-minute cycles."""
    out: list[tuple[int, int, str]] = []
    t = 0
    cycle = 0
    while t < n_minutes:
        deep = max(5, int(rng.normal(25 - 5 * cycle, 5)))
        plan = [("light", int(rng.normal(35, 8))), ("deep", deep), ("light", int(rng.normal(15, 5))),
                ("rem", int(rng.normal(15 + 5 * cycle, 5)))]
        if rng.random() < 0.5:
            plan.append(("awake", int(rng.integers(2, 8))))
        for stage, length in plan:
            length = max(2, length)
            end = min(n_minutes, t + length)
            if end > t:
                out.append((t, end, stage))
            t = end
            if t >= n_minutes:
                break
        cycle += 1
    return out


def simulate_patient(p: Profile, start_ms: int, days: int, episodes: list[Episode], seed: int,
                     nuisance: list[Episode] | None = None) -> pd.DataFrame:
    """All samples of one patient over ``days`` days from ``start_ms`` (a UTC midnight).

    ``nuisance``: late nights, alcohol, travel, heavy exercise (``plan_nuisance``);
    sensor noise comes with any plan (even an empty one); None: a clean patient.
    """
    rng = np.random.default_rng(seed * 100_003 + p.patient)
    noisy = nuisance is not None
    nuisance = nuisance or []
    nrng = np.random.default_rng(seed * 15_485_863 + p.patient)
    n = days * 1440
    minute_ms = start_ms + np.arange(n, dtype=np.int64) * MINUTE_MS
    asleep = np.zeros(n, dtype=bool)
    worn = np.ones(n, dtype=bool)
    hr_offset = np.zeros(n)
    rows: dict[str, list] = {"metric": [], "time": [], "end": [], "value": [], "label": []}

    def add(metric, t, e, v, label=None):
        rows["metric"].append(metric)
        rows["time"].append(t)
        rows["end"].append(e)
        rows["value"].append(v)
        rows["label"].append(label)

    def idx(ms: int) -> int:
        return int(np.clip((ms - start_ms) // MINUTE_MS, 0, n))

    mine = [e for e in episodes if e.patient == p.patient]
    # Nights.
    for d in range(-1, days):
        day_ms = start_ms + d * DAY_MS
        night_mid = day_ms + 27 * 3_600_000
        short = any(e.kind == "short_sleep" and e.start_ms <= night_mid - 6 * 3_600_000 < e.end_ms for e in mine)
        evening = day_ms + 20 * 3_600_000
        shift = 0.0
        if _nuisance_at(nuisance, "late_night", evening):
            shift += float(nrng.uniform(2.0, 3.5))
        trip = _nuisance_at(nuisance, "travel", evening)
        if trip is not None:
            shift += _trip_shift(trip)
        s, e = _sleep_window(p, day_ms, short, rng, shift)
        if e <= start_ms or s >= minute_ms[-1]:
            continue
        i0, i1 = idx(s), idx(e)
        asleep[i0:i1] = True
        for a, b, stage in _stages(int((e - s) // MINUTE_MS), rng):
            ts, te = s + a * MINUTE_MS, s + b * MINUTE_MS
            if ts >= start_ms and te <= minute_ms[-1] + MINUTE_MS:
                add("sleep_stage", ts, te, np.nan, stage)
        for h in range(1, int((e - s) // 3_600_000)):
            t = s + h * 3_600_000
            if start_ms <= t <= minute_ms[-1]:
                add("hrv_rmssd", t, None, float(max(5.0, rng.normal(p.hrv_base, 6))))
    # Steps: bouts while awake, more in the day, none asleep (in the local time of a trip).
    local_shift = np.zeros(n, np.int64)
    for trip in (x for x in nuisance if x.kind == "travel"):
        local_shift[idx(trip.start_ms):idx(trip.end_ms)] = int(round(-_trip_shift(trip)))
    hour = ((minute_ms // 3_600_000 + local_shift) % 24).astype(np.int64)
    activity_curve = np.where((hour >= 7) & (hour <= 21), 1.0, 0.15)
    walk_prob = 0.12 * activity_curve * (~asleep)
    walking = rng.random(n) < walk_prob
    cadence = rng.uniform(60, 115, n)
    steps = np.where(walking, cadence * rng.uniform(0.3, 1.0, n), 0.0)
    steps *= p.steps_per_day / max(1.0, steps.sum() / days)
    steps = np.round(np.clip(steps, 0, 180))
    # Workouts: 30-60 minutes in the late afternoon on some days.
    workout = np.zeros(n)
    for d in range(days):
        if rng.random() < p.workout_prob:
            s = start_ms + d * DAY_MS + int(rng.uniform(16.5, 18.0) * 3_600_000) // MINUTE_MS * MINUTE_MS
            length = int(rng.integers(30, 61))
            i0, i1 = idx(s), idx(s + length * MINUTE_MS)
            kind, intensity, level = [("running", "vigorous", 1.0), ("cycling", "moderate", 0.75),
                                      ("walking", "moderate", 0.5)][int(rng.integers(0, 3))]
            workout[i0:i1] = level
            steps[i0:i1] = np.round(rng.uniform(120, 165, i1 - i0) * (1.0 if kind == "running" else 0.6 if kind == "walking" else 0.0))
            add("activity", s, s + length * MINUTE_MS, float(round(length * (8 + 6 * level), 1)), (kind, intensity))
    # Heavy exercise: a long hard session in the afternoon.
    for ex in (x for x in nuisance if x.kind == "heavy_exercise"):
        s = ex.start_ms + int(nrng.uniform(0.5, 2.5) * 3_600_000) // MINUTE_MS * MINUTE_MS
        length = int(nrng.integers(90, 151))
        i0, i1 = idx(s), idx(s + length * MINUTE_MS)
        workout[i0:i1] = 1.0
        asleep[i0:i1] = False
        steps[i0:i1] = np.round(nrng.uniform(140, 170, i1 - i0))
        add("activity", s, s + length * MINUTE_MS, float(round(length * 14.0, 1)), ("running", "vigorous"))
    # Daily charge: watch off for 30-60 minutes in the evening.
    for d in range(days):
        s = start_ms + d * DAY_MS + int(p.charge_hour * 3_600_000) // MINUTE_MS * MINUTE_MS
        worn[idx(s):idx(s + int(rng.integers(30, 61)) * MINUTE_MS)] = False
    # Episodes.
    for e in mine:
        i0, i1 = idx(e.start_ms), idx(e.end_ms)
        if e.kind == "high_hr_at_rest":
            steps[i0:i1] = 0
            workout[i0:i1] = 0
            asleep[i0:i1] = False
            hr_offset[i0:i1] = rng.uniform(125, 140) - p.resting_hr - 8
        elif e.kind == "elevated_rhr":
            bump = rng.uniform(6, 9)
            hr_offset[i0:i1] += np.where(asleep[i0:i1], bump, bump * 0.6)
        elif e.kind == "wear_gap":
            worn[i0:i1] = False
    # Nuisance that raises the night's heart rate (not illness).
    for x in nuisance:
        i0, i1 = idx(x.start_ms), idx(x.end_ms)
        if x.kind == "alcohol":
            hr_offset[i0:i1] += np.where(asleep[i0:i1], nrng.uniform(3, 8), 0.0)
        elif x.kind == "heavy_exercise":
            hr_offset[i0:i1] += np.where(asleep[i0:i1], nrng.uniform(2, 4), 0.0)
        elif x.kind == "travel":
            j1 = min(i1, i0 + 2 * 1440)
            hr_offset[i0:j1] += np.where(asleep[i0:j1], 2.0, 0.0)
    # Heart rate: AR(1) noise around a circadian level.
    noise = lfilter([1.0], [1.0, -0.8], rng.normal(0, 1.6, n))
    level = np.where(asleep, p.resting_hr - 4, p.resting_hr + 9)
    circadian = 2.5 * np.sin(2 * np.pi * (minute_ms % DAY_MS) / DAY_MS - np.pi / 2)
    hr = level + circadian + 0.25 * steps + 75 * workout + hr_offset + noise
    if noisy:
        # Sensor noise: short bursts of optical error, and dropped minutes (not inside episodes).
        calm = np.ones(n, bool)
        for e in mine:
            calm[idx(e.start_ms - 3_600_000):idx(e.end_ms + 3_600_000)] = False
        for d in range(days):
            for _ in range(int(nrng.integers(0, 4))):
                i0 = d * 1440 + int(nrng.integers(0, 1440 - 10))
                i1 = i0 + int(nrng.integers(2, 9))
                if calm[i0:i1].all():
                    hr[i0:i1] += nrng.normal(0, 12, i1 - i0)
        worn &= ~((nrng.random(n) < 0.02) & calm)
    hr = np.clip(np.round(hr), 38, 200)
    on = worn
    # Steps samples: one-minute intervals with steps while worn.
    sm = on & (steps > 0)
    t_steps = minute_ms[sm]
    frame = pd.DataFrame({
        "metric": np.concatenate([np.full(on.sum(), "heart_rate", dtype=object), np.full(sm.sum(), "steps", dtype=object),
                                  np.array(rows["metric"], dtype=object)]),
        "time": np.concatenate([minute_ms[on], t_steps, np.array(rows["time"], dtype=np.int64)]),
        "end": np.concatenate([np.full(on.sum(), -1, dtype=np.int64), t_steps + MINUTE_MS,
                               np.array([-1 if x is None else x for x in rows["end"]], dtype=np.int64)]),
        "value": np.concatenate([hr[on], steps[sm], np.array(rows["value"], dtype=np.float64)]),
        "label": np.concatenate([np.full(on.sum() + sm.sum(), None, dtype=object), np.array(rows["label"] + [None], dtype=object)[:-1]]),
    })
    # Drop what falls in a wear gap (sleep and HRV come from the watch too).
    gap = ~worn[np.clip((frame["time"].to_numpy() - start_ms) // MINUTE_MS, 0, n - 1)]
    frame = frame[~gap]
    return frame.sort_values(["time", "metric"], kind="stable").reset_index(drop=True)


def _trip_shift(trip: Episode) -> float:
    """Hours a trip shifts the patient's day (east negative, west positive), from its times."""
    h = 3 + (trip.start_ms // DAY_MS) % 5  # 3-7 hours
    return float(h if (trip.patient + trip.start_ms // DAY_MS) % 2 else -h)


def _to_frame_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Epoch-ms columns to the readers' shape (datetime64 UTC; end NaT for point metrics)."""
    out = frame.copy()
    out["time"] = pd.to_datetime(out["time"], unit="ms", utc=True)
    end = out["end"].astype("float64").where(out["end"] >= 0)
    out["end"] = pd.to_datetime(end, unit="ms", utc=True)
    out["label"] = [lab[0] if isinstance(lab, tuple) else lab for lab in out["label"]]
    return out


def simulate_cohort(n_patients: int = 20, days: int = 30, start: datetime | None = None,
                    seed: int = 7, nuisance: bool = True) -> SimulatedCohort:
    """Simulate a cohort; ``frames`` match ``ingest.readers.load_frames``'s columns."""
    if start is None:
        start = datetime.now(UTC) - timedelta(days=days)
    start = datetime(start.year, start.month, start.day, tzinfo=UTC)
    start_ms = int(start.timestamp() * 1000)
    profiles = make_profiles(n_patients, seed)
    episodes = plan_episodes(profiles, start_ms, days, seed)
    cohort = SimulatedCohort(profiles)
    noise: list[Episode] = []
    for p in profiles:
        mine = plan_nuisance(p, start_ms, days, seed) if nuisance else []
        noise += mine
        cohort.frames[p.patient] = _to_frame_dtypes(
            simulate_patient(p, start_ms, days, episodes, seed, mine if nuisance else None))
    cohort.episodes = episodes_frame(episodes)
    cohort.nuisance = episodes_frame(noise)
    return cohort


def episodes_frame(episodes: list[Episode]) -> pd.DataFrame:
    return pd.DataFrame({
        "patient": [e.patient for e in episodes],
        "kind": [e.kind for e in episodes],
        "start": pd.to_datetime([e.start_ms for e in episodes], unit="ms", utc=True),
        "end": pd.to_datetime([e.end_ms for e in episodes], unit="ms", utc=True),
    })


def to_samples(frame: pd.DataFrame) -> list[dict]:
    """Epoch-ms simulator rows to samples.v1 upload samples."""
    out = []
    metric = frame["metric"].tolist()
    t = frame["time"].tolist()
    e = frame["end"].tolist()
    v = frame["value"].tolist()
    lab = frame["label"].tolist()
    for i in range(len(metric)):
        m = metric[i]
        if m == "heart_rate" or m == "hrv_rmssd":
            out.append({"metric": m, "time": t[i], "value": v[i]})
        elif m == "steps":
            out.append({"metric": m, "time": t[i], "end": e[i], "value": v[i]})
        elif m == "sleep_stage":
            out.append({"metric": m, "time": t[i], "end": e[i], "stage": lab[i]})
        else:
            kind, intensity = lab[i]
            out.append({"metric": m, "time": t[i], "end": e[i], "type": kind, "intensity": intensity,
                        "energy": v[i]})
    return out


def iter_uploads(frame: pd.DataFrame, max_samples: int = 500, window_ms: int = 15 * MINUTE_MS) -> Iterator[list[dict]]:
    """Cut one patient's epoch-ms rows into uploads, as a phone would send them:
    one upload per window of event time, split further at ``max_samples``."""
    if frame.empty:
        return
    times = frame["time"].to_numpy()
    key = times // window_ms if window_ms > 0 else np.zeros(len(times), dtype=np.int64)
    bounds = np.flatnonzero(np.r_[True, key[1:] != key[:-1], True])
    pending: list[dict] = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        pending.extend(to_samples(frame.iloc[a:b]))
        while len(pending) >= max_samples:
            yield pending[:max_samples]
            pending = pending[max_samples:]
        if 0 < window_ms < DAY_MS and pending:
            yield pending
            pending = []
    if pending:
        yield pending
