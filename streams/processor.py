"""The worker's one step, free of Faust: messages in, per-patient state and alerts out.

``DetectorProcessor.process`` takes a batch of samples.v1 messages (key, offset,
value), groups them by patient, runs each patient's ``PatientMonitor`` over the new
samples and returns the alerts to send and the new state to store. A patient's
stored state carries the offset of the last message applied to it (a patient always
lives in the same partition), so a message re-delivered after a crash (state already
written, offset not yet committed) is skipped: none applied twice. A batch that
reaches the topic twice under two offsets (a produce that timed out had landed, and
the phone re-sent the batch) is dropped by its batch id: the state keeps digests of
the patient's last ``RECENT_BATCHES`` batch ids, as the ingest sink keeps one row per
(patient, batch id).

The caller (the Faust agent) sends the alerts and waits for the broker's ack *before*
writing the state: a crash in between replays the messages and re-sends the same
alerts, which the alert sink applies idempotently. None lost, none doubled.

Late and imported data: a sample more than ``lateness_s`` behind the patient's newest
one falls in minutes the detectors have already judged. Event time alone covers a
phone that syncs hours late (all of the patient's data is late together, so none is
behind the newest). For the rest (a history imported after live data, a second
device syncing late) the processor *rebuilds the patient's state from the samples
store*: a fresh monitor (same time zone, parameters and overrides) replays the
stored samples of the last ``history_days`` merged with the batch, in event time, and
the events it gives from the earliest late sample on are sent (the earlier ones were
sent live, identical). When the late samples end more than ``join_gap_s`` before the
next stored sample (one chunk of an import, more to come), only the events up to
their end (+ the lateness) are sent: the time between is not yet known to be a gap. The approximation, stated: the store must already hold what
the monitor had seen (else the samples are counted in ``late_samples`` and dropped,
as before, and logged), and baselines older than ``history_days`` are not replayed.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lz4.block
import numpy as np
import orjson

from alerts.messages import AlertMessage
from ingest import storage
from streams.detectors import Event, PatientMonitor, Samples
from streams.detectors.base import (
    ACTIVITY,
    ASLEEP_STAGES,
    DAY_MS,
    HEART_RATE,
    MINUTE_MS,
    SLEEP,
    STEPS,
)

#: (patient, since_ms, until_ms) -> the patient's stored samples in [since, until)
HistoryReader = Callable[[int, int, int], Samples]

log = logging.getLogger(__name__)


@dataclass
class ProcessorStats:
    messages: int = 0
    samples: int = 0
    skipped_redelivered: int = 0
    skipped_repeated_batches: int = 0  # same batch id under a new offset
    unreadable: int = 0
    alerts: int = 0
    late: int = 0  # samples behind the patient's judged minutes
    rebuilds: int = 0  # patients' states rebuilt from the store for them


class Unreadable(ValueError):
    """A samples.v1 message the worker cannot read."""


def read_envelope(raw: bytes) -> tuple[int, list, str | None]:
    """A samples.v1 message's patient, raw sample dicts and batch id (the envelope checked)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Unreadable(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("schema_version") != 1:
        raise Unreadable("not a samples.v1 object")
    patient, samples = obj.get("patient"), obj.get("samples")
    if not isinstance(patient, int) or isinstance(patient, bool) or patient <= 0:
        raise Unreadable("patient must be a positive integer")
    if not isinstance(samples, list) or not samples:
        raise Unreadable("samples must be a non-empty list")
    batch_id = obj.get("batch_id")
    return patient, samples, batch_id if isinstance(batch_id, str) and batch_id else None


#: How many of a patient's latest batch ids the state remembers (6 bytes each): a phone
#: re-sends a batch within minutes, and 32 uploads are 8 hours of a 15-minute cadence.
RECENT_BATCHES = 32
_DIGEST = 6


def batch_digest(batch_id: str) -> bytes:
    """6 bytes of BLAKE2b: a false repeat among 32 remembered ids has odds ~1e-13."""
    return hashlib.blake2b(batch_id.encode(), digest_size=_DIGEST).digest()


def to_samples(records: list) -> Samples:
    try:
        return Samples.from_records(records)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise Unreadable(f"a sample is not normalised ({type(exc).__name__})") from exc


#: The preset dictionary of state blobs (LZ4 now, zlib before): part of the stored format,
#: never edit it (a changed dictionary makes every stored state unreadable).
STATE_ZDICT = (Path(__file__).parent / "state_zdict.bin").read_bytes()
#: The first byte of an LZ4-compressed state (zlib streams start with 0x78, pickles with 0x80).
STATE_LZ4 = b"\x04"


@dataclass
class PatientState:
    """What the table keeps per patient."""

    monitor: PatientMonitor
    offset: int = -1  # last samples.v1 offset applied
    # digests of the last RECENT_BATCHES batch ids applied, newest last (a class default,
    # so states pickled before this field load with none remembered)
    batches: bytes = b""

    def seen(self, digest: bytes) -> bool:
        b = self.batches
        i = b.find(digest)
        while i >= 0:  # a match that straddles two digests does not count
            if i % _DIGEST == 0:
                return True
            i = b.find(digest, i + 1)
        return False

    def remember(self, digest: bytes) -> None:
        self.batches = (self.batches + digest)[-RECENT_BATCHES * _DIGEST:]

    def dumps(self) -> bytes:
        """The pickled state, LZ4-compressed (high compression, level 4) with a preset
        dictionary, after the one-byte tag ``STATE_LZ4``.

        ``STATE_ZDICT`` is the pickle of a fresh monitor: the class paths and attribute
        layout every state repeats, so a month's state takes ~1.3 KB instead of ~2.8 KB.
        LZ4 rather than zlib: a state is written at every upload of its patient, and
        zlib's ~70 µs a state (mostly setting up its stream) was a tenth of a live
        upload's cost; LZ4 takes ~25 µs for ~240 bytes more (``bench.detect``).
        """
        raw = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        return STATE_LZ4 + lz4.block.compress(raw, mode="high_compression", compression=4,
                                              dict=STATE_ZDICT)

    @staticmethod
    def loads(blob: bytes) -> PatientState:
        tag = blob[:1]
        if tag == STATE_LZ4:
            blob = lz4.block.decompress(blob[1:], dict=STATE_ZDICT)
        elif tag != b"\x80":  # not a bare pickle (those start with PROTO): zlib, as written before
            # states compressed without the dictionary read as well (zlib asks for it only
            # when the stream was written with one, and checks its checksum)
            d = zlib.decompressobj(zdict=STATE_ZDICT)
            blob = d.decompress(blob) + d.flush()
        return pickle.loads(blob)  # noqa: S301 - our own changelog, never user input


@dataclass
class Output:
    alerts: list[AlertMessage] = field(default_factory=list)
    #: the new state blobs to store (filled by ``dump``)
    states: dict[bytes, bytes] = field(default_factory=dict)
    #: the patients whose state moved on, decoded (``judge``), until ``dump`` encodes them
    changed: dict[bytes, PatientState] = field(default_factory=dict)


class DetectorProcessor:
    """Runs patients' monitors over message batches; caches decoded state in memory."""

    def __init__(self, *, lateness_s: float, overrides: Callable[[int], dict] | None = None,
                 tz_offset: Callable[[int], int] | None = None, history: HistoryReader | None = None,
                 history_days: float = 60, join_gap_s: float = 3600) -> None:
        self.lateness_s = lateness_s
        self.join_gap_ms = int(join_gap_s * 1000)
        self.history = history
        self.history_days = history_days
        self.overrides = overrides or (lambda _pid: {})
        self.tz_offset = tz_offset or (lambda _pid: 0)
        self.stats = ProcessorStats()
        self._cache: dict[bytes, tuple[bytes, PatientState]] = {}

    def forget(self) -> None:
        """Drop the decoded-state cache (after a rebalance)."""
        self._cache.clear()

    def _state(self, key: bytes, blob: bytes | None, patient: int) -> PatientState:
        cached = self._cache.pop(key, None)  # back in only once the new state is written
        if blob is None:
            return PatientState(PatientMonitor(lateness_s=self.lateness_s,
                                               tz_offset_min=self.tz_offset(patient)))
        if cached is not None and cached[0] == blob:
            return cached[1]
        return PatientState.loads(blob)

    def process(self, messages: Sequence[tuple[bytes, int, bytes]],
                get_state: Callable[[bytes], bytes | None]) -> Output:
        """``judge`` then ``dump``: the alerts and the new state blobs of a batch."""
        return self.dump(self.judge(messages, get_state))

    def judge(self, messages: Sequence[tuple[bytes, int, bytes]],
              get_state: Callable[[bytes], bytes | None]) -> Output:
        """Run the monitors over a batch: its alerts, and the states that moved on (decoded).

        The worker sends the alerts before it encodes the states (``dump``): encoding is
        about a fifth of a patient's cost, and an alert need not wait for it.
        """
        out = Output()
        by_key: dict[bytes, list[tuple[int, bytes]]] = {}
        for key, offset, value in messages:
            by_key.setdefault(key, []).append((offset, value))
        for key, items in by_key.items():
            self._patient(key, items, get_state, out)
        return out

    def dump(self, out: Output) -> Output:
        """Encode the states ``judge`` moved on into ``out.states`` (and keep them decoded)."""
        for key, state in out.changed.items():
            blob = state.dumps()
            out.states[key] = blob
            self._cache[key] = (blob, state)
        out.changed.clear()
        return out

    def _patient(self, key: bytes, items: list[tuple[int, bytes]],
                 get_state: Callable[[bytes], bytes | None], out: Output) -> None:
        records: list = []
        per_message: list[tuple[int, list]] = []
        patient = None
        last = -1
        try:
            key_patient = int(key)
        except (TypeError, ValueError):
            key_patient = None
        state = None
        for offset, value in sorted(items):
            self.stats.messages += 1
            try:
                who, recs, batch_id = read_envelope(value)
            except Unreadable as exc:
                self.stats.unreadable += 1
                log.warning("unreadable samples message at offset %d: %s", offset, str(exc)[:200])
                continue
            if key_patient is not None and who != key_patient:
                self.stats.unreadable += 1
                log.warning("message at offset %d: its key is not its patient id", offset)
                continue
            patient = who
            if state is None:
                state = self._state(key, get_state(key), patient)
            if offset <= state.offset:
                self.stats.skipped_redelivered += 1
                continue
            last = max(last, offset)
            if batch_id is not None:
                digest = batch_digest(batch_id)
                if state.seen(digest):
                    self.stats.skipped_repeated_batches += 1
                    continue
                state.remember(digest)
            records.extend(recs)
            per_message.append((offset, recs))
        if state is None or patient is None:
            return
        try:
            samples = to_samples(records)  # one pass over all of this patient's messages
        except Unreadable:
            parts = []
            for offset, recs in per_message:  # find the bad message(s), keep the rest
                try:
                    parts.append(to_samples(recs))
                except Unreadable as exc:
                    self.stats.unreadable += 1
                    log.warning("unreadable samples message at offset %d: %s", offset, exc)
            samples = Samples.concat(parts)
        state.monitor.apply_overrides(self.overrides(patient))
        self.stats.samples += len(samples)
        events = self._update(patient, state, samples) if len(samples) else []
        for ev in events:
            out.alerts.append(AlertMessage.from_event(patient, ev))
        self.stats.alerts += len(events)
        if last > state.offset:
            state.offset = last
            out.changed[key] = state

    def _update(self, patient: int, state: PatientState, samples: Samples) -> list[Event]:
        mon = state.monitor
        late = late_mask(mon, samples)
        if not late.any():
            return mon.update(samples)
        self.stats.late += int(late.sum())
        if self.history is None:
            return mon.update(samples)  # counted in late_samples and dropped
        rebuilt = self._rebuild(patient, mon, samples)
        if rebuilt is None:
            log.warning("patient state not rebuilt: the store is behind the detectors; "
                        "%d late samples dropped", int(late.sum()))
            return mon.update(samples)
        fresh, events, next_stored = rebuilt
        state.monitor = fresh
        self.stats.rebuilds += 1
        since, until = int(samples.time[late].min()), int(samples.time[late].max())
        if next_stored - until > self.join_gap_ms:
            # a chunk of an import that does not reach the stored data yet: the time between
            # is a gap only until the next chunk comes, so nothing is judged past the chunk
            until += int(mon.lateness_s * 1000)
            return [e for e in events if since <= e.time <= until]
        return [e for e in events if e.time >= since]

    def _rebuild(self, patient: int, mon: PatientMonitor, samples: Samples):
        assert self.history is not None and mon.watermark_ is not None and mon.bins_ is not None
        lateness_ms = int(mon.lateness_s * 1000)
        newest = max(mon.watermark_ + lateness_ms, int(samples.time.max()))
        since = min(int(samples.time.min()), newest - int(self.history_days * DAY_MS))
        try:
            stored = self.history(patient, since, newest + 1)
        except Exception as exc:  # noqa: BLE001 - a store outage must not stop the worker
            log.warning("samples store unreadable for a rebuild (%s)", type(exc).__name__)
            return None
        judged_ms = mon.bins_.origin * MINUTE_MS
        if len(stored) == 0 or int(stored.time.max()) < judged_ms - lateness_ms:
            return None
        fresh = PatientMonitor(detectors=mon.detectors, lateness_s=mon.lateness_s,
                               tz_offset_min=mon.tz_offset_min, params=mon.params)
        fresh.apply_overrides(mon.overrides_)
        fresh.late_samples_ = mon.late_samples
        late_end = int(samples.time[late_mask(mon, samples)].max())
        after = stored.time[stored.time > late_end]
        next_stored = int(after.min()) if after.size else late_end
        return fresh, fresh.update(dedupe(Samples.concat([stored, samples]))), next_stored


def late_mask(mon: PatientMonitor, samples: Samples) -> np.ndarray:
    """Samples wholly before the minutes the monitor has already judged."""
    if mon.bins_ is None or mon.watermark_ is None:
        return np.zeros(len(samples), bool)
    lo = mon.bins_.origin * MINUTE_MS
    before = np.maximum(samples.end, samples.time + 1) <= lo
    if not before.any():  # the common case: no test of the metrics (np.isin) per message
        return before
    binned = np.isin(samples.metric, (HEART_RATE, STEPS, ACTIVITY))  # sleep has its own lateness
    return binned & before


def dedupe(s: Samples) -> Samples:
    """One copy of each (metric, time, end, value, asleep) row (a batch may already be stored)."""
    if len(s) == 0:
        return s
    value = np.where(np.isnan(s.value), -1e300, s.value)
    order = np.lexsort((s.asleep, value, s.end, s.time, s.metric))
    keys = np.stack([s.metric[order].astype(np.float64), s.time[order].astype(np.float64),
                     s.end[order].astype(np.float64), value[order], s.asleep[order]], axis=1)
    keep = np.ones(len(order), bool)
    keep[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    return s.take(np.sort(order[keep]))


def store_history(patient: int, since_ms: int, until_ms: int) -> Samples:
    """The patient's samples in [since, until) from the samples store (psycopg, not the ORM)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    with storage.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT metric, (extract(epoch FROM time) * 1000)::bigint,"
            " (extract(epoch FROM coalesce(end_time, time)) * 1000)::bigint, value, label"
            " FROM samples WHERE patient_id = %s AND time >= %s AND time < %s",
            (patient, epoch + timedelta(milliseconds=since_ms), epoch + timedelta(milliseconds=until_ms)),
        ).fetchall()
    if not rows:
        return Samples.empty()
    metric = np.fromiter((r[0] for r in rows), np.int8, len(rows))
    asleep = (metric == SLEEP) & np.fromiter((r[4] in ASLEEP_STAGES for r in rows), bool, len(rows))
    return Samples.from_arrays(metric, [r[1] for r in rows], [r[2] for r in rows],
                               [np.nan if r[3] is None else r[3] for r in rows], asleep)
