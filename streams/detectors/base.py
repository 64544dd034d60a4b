"""The detectors' common ground: columnar samples, event-time minute frames, episodes.

Pure numpy: nothing here imports Faust or Django, so the same code runs in the
Faust worker, in ``evaluate_detectors`` and in the tests.

Event time
----------
A detector keeps a *watermark*: the largest sample time it has seen minus its
``lateness_s``. Samples are added into per-minute bins (exact integer sums, so the
order of arrival never changes a result); a minute is *final* once the watermark has
passed its end, and only final minutes reach the detector's logic (``_step``), in
order. A sample older than the last final minute is late: it is counted in
``late_samples_`` and ignored. Hence replaying a history in one batch and living
through it in many small out-of-order batches give the same events, as long as no
sample arrives more than ``lateness_s`` behind the newest one.

Contract (river style)
----------------------
* ``__init__`` stores every hyperparameter verbatim; learned state lives in
  attributes whose names end in ``_``.
* ``update(samples) -> list[Event]`` learns from a batch and reports events.
* ``advance_to(t_ms)`` moves event time on without data (an idle patient).
* ``clone()`` gives a fresh detector with the same hyperparameters.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

# Metric codes (the same numbers as ingest.schema.METRICS[...].code).
HEART_RATE, STEPS, SLEEP, ACTIVITY, HRV = 1, 2, 3, 4, 5
METRIC_CODES = {"heart_rate": HEART_RATE, "steps": STEPS, "sleep_stage": SLEEP,
                "activity": ACTIVITY, "hrv_rmssd": HRV}
ASLEEP_STAGES = frozenset({"light", "deep", "rem", "asleep"})
SEVERITY_RANK = {"info": 0, "yellow": 1, "red": 2}

HR_SCALE = 1000  # heart rate is summed in milli-bpm integers: exact and order-free


# --------------------------------------------------------------------------- samples

@dataclass(frozen=True, slots=True)
class Samples:
    """A batch of samples of one patient, as columns.

    ``end`` equals ``time`` for point metrics. ``asleep`` is True for sleep-stage
    intervals in a sleep stage (light, deep, rem, asleep) and False elsewhere.
    """

    metric: np.ndarray  # int8 codes
    time: np.ndarray  # int64 epoch ms
    end: np.ndarray  # int64 epoch ms
    value: np.ndarray  # float64 (NaN where none)
    asleep: np.ndarray  # bool

    def __len__(self) -> int:
        return int(self.time.shape[0])

    @classmethod
    def empty(cls) -> Samples:
        return cls(np.empty(0, np.int8), np.empty(0, np.int64), np.empty(0, np.int64),
                   np.empty(0, np.float64), np.empty(0, bool))

    @classmethod
    def from_arrays(cls, metric, time, end=None, value=None, asleep=None) -> Samples:
        time = np.asarray(time, dtype=np.int64)
        n = time.shape[0]
        metric = np.broadcast_to(np.asarray(metric, dtype=np.int8), (n,)).copy()
        end = time.copy() if end is None else np.asarray(end, dtype=np.int64)
        value = np.full(n, np.nan) if value is None else np.asarray(value, dtype=np.float64)
        asleep = np.zeros(n, bool) if asleep is None else np.asarray(asleep, dtype=bool)
        return cls(metric, time, end, value, asleep)

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> Samples:
        """From normalised samples.v1 sample dicts (``ingest.schema``).

        Raises KeyError, TypeError or ValueError on a record of the wrong shape.
        """
        n = len(records)
        codes = METRIC_CODES
        metric = np.fromiter((codes[s["metric"]] for s in records), np.int8, n)
        time = np.fromiter((s["time"] for s in records), np.int64, n)
        end = np.fromiter((s.get("end") or s["time"] for s in records), np.int64, n)
        value = np.array([s.get("value") for s in records], dtype=np.float64)  # None -> NaN
        asleep = metric == SLEEP
        if asleep.any():
            stages = [records[i].get("stage") for i in np.flatnonzero(asleep).tolist()]
            asleep[asleep] = np.fromiter((st in ASLEEP_STAGES for st in stages), bool, len(stages))
        return cls(metric, time, end, value, asleep)

    @classmethod
    def from_frame(cls, frame) -> Samples:
        """From a replay DataFrame (columns metric, time, end, value, label)."""
        metric = frame["metric"].map(METRIC_CODES).fillna(0).to_numpy(np.int8)
        time = frame["time"].to_numpy("datetime64[ms]").astype(np.int64)
        end_raw = frame["end"].to_numpy("datetime64[ms]")
        end = np.where(np.isnat(end_raw), time, end_raw.astype(np.int64))
        value = frame["value"].to_numpy(np.float64, na_value=np.nan)
        labels = frame["label"].to_numpy(object) if "label" in frame else np.full(len(frame), None)
        asleep = (metric == SLEEP) & np.isin(labels, list(ASLEEP_STAGES))
        return cls(metric, time, end, value, asleep)

    def take(self, index) -> Samples:
        return Samples(self.metric[index], self.time[index], self.end[index],
                       self.value[index], self.asleep[index])

    @staticmethod
    def concat(parts: Iterable[Samples]) -> Samples:
        parts = list(parts)
        if not parts:
            return Samples.empty()
        return Samples(*(np.concatenate([getattr(p, f) for p in parts])
                         for f in ("metric", "time", "end", "value", "asleep")))


# --------------------------------------------------------------------------- frames

@dataclass(frozen=True, slots=True)
class MinuteFrame:
    """Final minutes ``[start, start + len)`` (minute numbers since the epoch, UTC)."""

    start: int
    hr_sum: np.ndarray  # int64, milli-bpm summed over the minute's heart-rate samples
    hr_n: np.ndarray  # int32, heart-rate samples in the minute
    steps: np.ndarray  # float64, steps (intervals spread in proportion to overlap)
    activity: np.ndarray  # int32, activity (workout) intervals overlapping the minute
    #: what several detectors derive from the same frame, computed once per frame (never
    #: state; the arrays in it are shared, so no detector may change them in place)
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def moving(self) -> np.ndarray:
        """Minutes with steps or a workout: not at rest."""
        m = self.memo.get("moving")
        if m is None:
            m = self.memo["moving"] = (self.steps > 0) | (self.activity > 0)
        return m

    def rest_counts(self, tail: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``trailing_count(self.moving, tail, width)``: each minute's moving minutes among
        the last ``width``, and the new tail (the detectors that ask with the same tail and
        width share one answer)."""
        key = ("rest", width, tail.dtype.str, tail.tobytes())
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = trailing_count(self.moving, tail, width)
        return hit

    def rest_tail(self, tail: np.ndarray, width: int) -> np.ndarray:
        """Only the new tail of ``rest_counts(tail, width)`` (the same array), for a
        detector that needs no counts from this frame: the last ``width - 1`` moving
        flags, without the trailing sums."""
        hit = self.memo.get(("rest", width, tail.dtype.str, tail.tobytes()))
        if hit is not None:
            return hit[1]
        return tail_of(np.concatenate([tail.astype(np.int64), self.moving.astype(np.int64)]), width)

    def hr_mean(self) -> np.ndarray:
        """Each minute's mean heart rate in bpm, 0 where the minute has none."""
        m = self.memo.get("hr_mean")
        if m is None:
            m = np.zeros(len(self))
            np.divide(self.hr_sum, self.hr_n * HR_SCALE, out=m, where=self.hr_n > 0)
            self.memo["hr_mean"] = m
        return m

    def moving_cumsum(self) -> np.ndarray:
        """The running count of moving minutes over the frame (int64)."""
        m = self.memo.get("moving_cumsum")
        if m is None:
            m = self.memo["moving_cumsum"] = np.cumsum(self.moving, dtype=np.int64)
        return m

    def local_minutes(self, offset_min: int) -> np.ndarray:
        """Minute numbers shifted by a UTC offset (local minutes since the epoch)."""
        key = ("local", offset_min)
        m = self.memo.get(key)
        if m is None:
            m = self.memo[key] = np.arange(self.start + offset_min, self.stop + offset_min, dtype=np.int64)
        return m

    def __len__(self) -> int:
        return int(self.hr_n.shape[0])

    @property
    def stop(self) -> int:
        return self.start + len(self)

    def minutes(self) -> np.ndarray:
        return np.arange(self.start, self.stop, dtype=np.int64)


def spread_intervals(minute_lo: int, time: np.ndarray, end: np.ndarray):
    """Split intervals into (minute, overlap ms, sample index) pieces, minutes >= minute_lo."""
    end = np.maximum(end, time + 1)
    m0 = time // MINUTE_MS
    m1 = (end - 1) // MINUTE_MS
    k = (m1 - m0 + 1).astype(np.int64)
    owner = np.repeat(np.arange(time.shape[0]), k)
    first = np.repeat(np.cumsum(k) - k, k)
    minute = m0[owner] + (np.arange(owner.shape[0]) - first)
    lo = np.maximum(time[owner], minute * MINUTE_MS)
    hi = np.minimum(end[owner], (minute + 1) * MINUTE_MS)
    keep = minute >= minute_lo
    return minute[keep], (hi - lo)[keep], owner[keep]


class _MinuteBins:
    """Open (not yet final) minutes from ``origin`` on, as growable dense arrays."""

    __slots__ = ("origin", "hr_sum", "hr_n", "steps", "activity")

    def __init__(self) -> None:
        self.origin = 0
        self.hr_sum = np.zeros(0, np.int64)
        self.hr_n = np.zeros(0, np.int32)
        self.steps = np.zeros(0, np.float64)
        self.activity = np.zeros(0, np.int32)

    def __getstate__(self):
        # raw bytes (the dtypes are fixed): a pickled ndarray costs ~130 bytes of header
        # and a Python-level reduce each
        return (self.origin, self.hr_sum.tobytes(), self.hr_n.tobytes(), self.steps.tobytes(),
                self.activity.tobytes())

    def __setstate__(self, state) -> None:
        self.origin, hr_sum, hr_n, steps, activity = state
        if isinstance(hr_sum, np.ndarray):  # written before the arrays were stored as bytes
            self.hr_sum, self.hr_n, self.steps, self.activity = hr_sum, hr_n, steps, activity
            return
        self.hr_sum = np.frombuffer(hr_sum, np.int64).copy()
        self.hr_n = np.frombuffer(hr_n, np.int32).copy()
        self.steps = np.frombuffer(steps, np.float64).copy()
        self.activity = np.frombuffer(activity, np.int32).copy()

    def _grow(self, upto: int) -> None:
        need = upto - self.origin + 1
        have = self.hr_n.shape[0]
        if need > have:
            extra = need - have
            self.hr_sum = np.concatenate([self.hr_sum, np.zeros(extra, np.int64)])
            self.hr_n = np.concatenate([self.hr_n, np.zeros(extra, np.int32)])
            self.steps = np.concatenate([self.steps, np.zeros(extra, np.float64)])
            self.activity = np.concatenate([self.activity, np.zeros(extra, np.int32)])

    def add(self, s: Samples) -> int:
        """Add samples at or after ``origin``; return how many were late (all earlier)."""
        late = 0
        lo_ms = self.origin * MINUTE_MS
        hr = (s.metric == HEART_RATE) & np.isfinite(s.value)
        if hr.any():
            t = s.time[hr]
            ok = t >= lo_ms
            late += int((~ok).sum())
            m = t[ok] // MINUTE_MS
            if m.size:
                self._grow(int(m.max()))
                idx = m - self.origin
                np.add.at(self.hr_sum, idx, np.rint(s.value[hr][ok] * HR_SCALE).astype(np.int64))
                np.add.at(self.hr_n, idx, 1)
        st = (s.metric == STEPS) & np.isfinite(s.value)
        if st.any():
            t, e, v = s.time[st], s.end[st], s.value[st]
            late += int((np.maximum(e, t + 1) <= lo_ms).sum())
            minute, overlap, owner = spread_intervals(self.origin, t, e)
            if minute.size:
                self._grow(int(minute.max()))
                share = v[owner] * overlap / np.maximum(e - t, 1)[owner]
                np.add.at(self.steps, minute - self.origin, share)
        act = s.metric == ACTIVITY
        if act.any():
            t, e = s.time[act], s.end[act]
            late += int((np.maximum(e, t + 1) <= lo_ms).sum())
            minute, _, _ = spread_intervals(self.origin, t, e)
            if minute.size:
                self._grow(int(minute.max()))
                np.add.at(self.activity, minute - self.origin, 1)
        return late

    def pop(self, stop: int) -> MinuteFrame:
        """Remove and return minutes ``[origin, stop)``."""
        n = max(0, stop - self.origin)
        have = self.hr_n.shape[0]
        if n > have:
            self._grow(stop - 1)
        frame = MinuteFrame(self.origin, self.hr_sum[:n], self.hr_n[:n], self.steps[:n],
                            self.activity[:n])
        self.hr_sum, self.hr_n = self.hr_sum[n:], self.hr_n[n:]
        self.steps, self.activity = self.steps[n:], self.activity[n:]
        self.origin += n
        return frame


# --------------------------------------------------------------------------- events

@dataclass(frozen=True, slots=True)
class Event:
    """A change in one alert episode.

    ``state`` is ``open`` (new episode), ``update`` (severity or evidence changed,
    or the episode re-opened within its cooldown) or ``closed`` (the signal returned
    to normal). ``seq`` grows with each event of an episode, so a consumer that sees
    them out of order keeps the latest. Identity: (patient, detector, window_start).
    """

    detector: str
    severity: str
    state: str
    window_start: int  # epoch ms
    window_end: int  # epoch ms
    seq: int
    evidence: dict[str, Any] = field(default_factory=dict)
    at: int = -1  # event time (epoch ms) at which the change happened; -1: window_end

    @property
    def time(self) -> int:
        """When the change happened in event time (a close comes after its window)."""
        return self.window_end if self.at < 0 else self.at

    def as_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "severity": self.severity, "state": self.state,
                "window_start": self.window_start, "window_end": self.window_end,
                "seq": self.seq, "evidence": self.evidence, "at": self.time}


class Episode:
    """One detector's current episode: open, escalate, close, re-open within cooldown.

    A condition that flickers produces one alert, not a storm: a new onset less than
    ``cooldown_ms`` after the last close re-opens the same episode (same window start).
    """

    __slots__ = ("cooldown_ms", "start", "end", "severity", "seq", "is_open", "closed_at")

    def __init__(self, cooldown_ms: int) -> None:
        self.cooldown_ms = int(cooldown_ms)
        self.start = -1
        self.end = -1
        self.severity = "info"
        self.seq = 0
        self.is_open = False
        self.closed_at = -1

    def __getstate__(self):
        return _EPISODE_FIELDS(self)

    def __setstate__(self, state) -> None:
        for k, v in zip(self.__slots__, state, strict=True):
            setattr(self, k, v)

    def raise_(self, name: str, start: int, end: int, severity: str,
               evidence: dict[str, Any], merge: bool = False) -> Event | None:
        """The condition holds over [start, end]; return the event to send, if any.

        ``merge``: re-open the last episode whatever the cooldown (the same rest period).
        """
        if self.is_open:
            self.end = max(self.end, end)
            if SEVERITY_RANK[severity] <= SEVERITY_RANK[self.severity]:
                return None
            self.severity = severity
            state = "update"
        elif self.closed_at >= 0 and (merge or start - self.closed_at <= self.cooldown_ms):
            self.is_open = True
            self.end = max(self.end, end)
            if SEVERITY_RANK[severity] > SEVERITY_RANK[self.severity]:
                self.severity = severity
            state = "update"
        else:
            self.start, self.end, self.severity = start, end, severity
            self.is_open = True
            self.seq = 0
            state = "open"
        self.seq += 1
        return Event(name, self.severity, state, self.start, self.end, self.seq, evidence)

    def extend(self, end: int) -> None:
        if self.is_open:
            self.end = max(self.end, end)

    def touch(self, name: str, end: int, evidence: dict[str, Any]) -> Event | None:
        """New evidence at the same severity: extend the open episode and report it."""
        if not self.is_open:
            return None
        self.end = max(self.end, end)
        self.seq += 1
        return Event(name, self.severity, "update", self.start, self.end, self.seq, evidence)

    def close(self, name: str, at: int, evidence: dict[str, Any]) -> Event | None:
        """The signal is back to normal at ``at``."""
        if not self.is_open:
            return None
        self.is_open = False
        self.closed_at = at
        self.seq += 1
        return Event(name, self.severity, "closed", self.start, self.end, self.seq, evidence, at)


#: the slots in order, read in one C call (a state write reads every episode's)
_EPISODE_FIELDS = operator.attrgetter(*Episode.__slots__)


# --------------------------------------------------------------------------- detectors

def _r(x: float, nd: int = 1) -> float | None:
    """A JSON-safe rounded float (None for NaN)."""
    x = float(x)
    return None if not np.isfinite(x) else round(x, nd)


class Detector:
    """Base class: event-time minute binning around a detector's ``_step`` logic.

    Subclasses set ``name``, call ``super().__init__(lateness_s, tz_offset_min)`` after
    storing their own hyperparameters, implement ``_step(frame) -> list[Event]``, and
    may implement ``_ingest(samples)`` to see raw samples (for example sleep intervals,
    which arrive in the morning, long after the minutes they cover were final).
    """

    name: ClassVar[str] = "detector"

    def __init__(self, lateness_s: float = 600, tz_offset_min: int = 0) -> None:
        self.lateness_s = lateness_s
        self.tz_offset_min = tz_offset_min
        self.watermark_: int | None = None  # epoch ms, or None before any sample
        self.late_samples_ = 0
        self.bins_: _MinuteBins | None = _MinuteBins()

    # -- river-style plumbing ---------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD and p.name not in names:
                    names.append(p.name)
        return names

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> Detector:
        """Change hyperparameters in place (for example a clinician's threshold)."""
        known = set(self._param_names())
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"{self.name}: unknown parameters {sorted(unknown)}")
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def clone(self) -> Detector:
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- event time -----------------------------------------------------------------
    def update(self, samples: Samples) -> list[Event]:
        """Learn from a batch (any order) and return the events it completes."""
        if len(samples) == 0:
            return []
        self._admit(samples)
        self._ingest(samples)
        return self._advance(int(samples.time.max()))

    def advance_to(self, t_ms: int) -> list[Event]:
        """Move event time to ``t_ms`` with no data (an idle patient's clock)."""
        if self.watermark_ is None:
            return []
        return self._advance(int(t_ms))

    def _admit(self, samples: Samples) -> None:
        assert self.bins_ is not None
        lateness = int(self.lateness_s * 1000)
        if self.watermark_ is None:
            # Everything that can still arrive in time is at or after this minute.
            lo = min(int(samples.time.min()), int(samples.time.max()) - lateness)
            self.bins_.origin = lo // MINUTE_MS
            self.watermark_ = lo
        self.late_samples_ += self.bins_.add(samples)

    def _advance(self, newest_ms: int) -> list[Event]:
        assert self.watermark_ is not None and self.bins_ is not None
        lateness = int(self.lateness_s * 1000)
        self.watermark_ = max(self.watermark_, newest_ms - lateness)
        stop = self.watermark_ // MINUTE_MS  # minutes ending at or before the watermark
        if stop <= self.bins_.origin:
            return []
        return self._step(self.bins_.pop(stop))

    def _ingest(self, samples: Samples) -> None:  # noqa: B027 - optional hook
        """See raw samples before minutes are final (default: nothing)."""

    def _step(self, frame: MinuteFrame) -> list[Event]:
        raise NotImplementedError

    # -- helpers for subclasses -------------------------------------------------------
    @property
    def _tz_ms(self) -> int:
        return int(self.tz_offset_min) * MINUTE_MS

    def _local_minutes(self, frame: MinuteFrame) -> np.ndarray:
        return frame.local_minutes(int(self.tz_offset_min))

    def state_bytes(self) -> int:
        import pickle

        return len(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))

    # -- compact pickling: the state blob is what the changelog and RocksDB hold --------
    #: attributes recomputed from the others after unpickling (``_derive``), not stored
    _derived: ClassVar[tuple[str, ...]] = ()

    def _derive(self) -> None:  # noqa: B027 - optional hook
        """Recompute the ``_derived`` attributes from the stored ones."""

    def __getstate__(self):
        """Attribute values in the class's own order (no names), arrays as raw bytes.

        A pickled ndarray costs ~130 bytes of header, and a dict of attribute names
        some hundreds more per detector: this keeps a patient's state small without
        changing a single value. A hyperparameter at its default is stored as ``...``.
        """
        order, getter, params = _spec(type(self))
        d = self.__dict__
        if tuple(d) != order:
            return {k: _pack(v) for k, v in d.items() if k not in self._derived}
        # one C call for the values, one comprehension for the arrays, then the few
        # hyperparameters (this runs for every detector of every patient at each write)
        out = [(_ND, v.dtype.str, v.shape, v.tobytes()) if type(v) is _NDARRAY else v
               for v in getter(self)]
        for i, default in params:
            v = out[i]
            if v == default and type(v) is type(default):
                out[i] = ...
        return tuple(out)

    def __setstate__(self, state) -> None:
        if isinstance(state, dict):
            self.__dict__.update({k: _unpack(v) for k, v in state.items()})
        else:
            spec = _stored(type(self))[1]
            self.__dict__.update(
                (k, default if v is ... else _unpack(v))
                for (k, default), v in zip(spec, state, strict=True))
        if self._derived:
            self._derive()


_Spec = tuple[tuple[str, ...], list[tuple[str, Any]], Callable[[Any], tuple], tuple[tuple[int, Any], ...]]
_SPECS: dict[type, _Spec] = {}
_ND = "\0nd"
_NDARRAY = np.ndarray
_NO_DEFAULT = object()


def _stored(cls: type[Detector]) -> _Spec:
    """A fresh ``cls``'s attribute names in order; the stored ones with their defaults
    (``_NO_DEFAULT`` for state); a getter of the stored values; the hyperparameters'
    positions among them with their defaults."""
    spec = _SPECS.get(cls)
    if spec is None:
        fresh = cls()
        params = set(cls._param_names())
        stored = [(k, v if k in params else _NO_DEFAULT) for k, v in fresh.__dict__.items()
                  if k not in cls._derived]
        names = [k for k, _ in stored]
        getter = operator.attrgetter(*names) if len(names) > 1 else (lambda o, k=names[0]: (getattr(o, k),))
        defaults = tuple((i, v) for i, (_, v) in enumerate(stored) if v is not _NO_DEFAULT)
        spec = _SPECS[cls] = (tuple(fresh.__dict__), stored, getter, defaults)
    return spec


def _spec(cls: type[Detector]) -> tuple[tuple[str, ...], Callable[[Any], tuple], tuple[tuple[int, Any], ...]]:
    order, _, getter, params = _stored(cls)
    return order, getter, params


def _pack(v):
    if isinstance(v, np.ndarray):
        return (_ND, v.dtype.str, v.shape, v.tobytes())
    return v


def _unpack(v):
    if isinstance(v, tuple) and len(v) == 4 and v[0] == _ND:
        return np.frombuffer(v[3], dtype=np.dtype(v[1])).reshape(v[2]).copy()
    return v


def trailing_count(flags: np.ndarray, tail: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """How many of each position's last ``width`` flags are set (``tail``: the previous width-1).

    Integer counts, and the new tail, so a stream cut anywhere gives the same answers.
    """
    full = np.concatenate([tail.astype(np.int64), flags.astype(np.int64)])
    c = np.concatenate([[0], np.cumsum(full)])
    k = tail.shape[0]
    idx = np.arange(k, full.shape[0])
    lo = np.maximum(idx - width + 1, 0)
    counts = c[idx + 1] - c[lo]
    return counts, tail_of(full, width)


def tail_of(full: np.ndarray, width: int) -> np.ndarray:
    """The last ``width - 1`` flags of ``full`` (int8), zero-padded in front."""
    new_tail = full[max(0, full.shape[0] - (width - 1)):] if width > 1 else full[:0]
    if new_tail.shape[0] < width - 1:
        new_tail = np.concatenate([np.zeros(width - 1 - new_tail.shape[0], np.int64), new_tail])
    return new_tail.astype(np.int8)
