"""The worker's one step, free of Faust: messages in, per-patient state and alerts out.

``DetectorProcessor.process`` takes a batch of samples.v1 messages (key, offset,
value), groups them by patient, runs each patient's ``PatientMonitor`` over the new
samples and returns the alerts to send and the new state to store. A patient's
stored state carries the offset of the last message applied to it (a patient always
lives in the same partition), so a message re-delivered after a crash (state already
written, offset not yet committed) is skipped: none applied twice.

The caller (the Faust agent) sends the alerts and waits for the broker's ack *before*
writing the state: a crash in between replays the messages and re-sends the same
alerts, which the alert sink applies idempotently. None lost, none doubled.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from alerts.messages import AlertMessage
from streams.detectors import PatientMonitor, Samples

log = logging.getLogger(__name__)


@dataclass
class ProcessorStats:
    messages: int = 0
    samples: int = 0
    skipped_redelivered: int = 0
    unreadable: int = 0
    alerts: int = 0


class Unreadable(ValueError):
    """A samples.v1 message the worker cannot read."""


def read_envelope(raw: bytes) -> tuple[int, list]:
    """A samples.v1 message's patient and raw sample dicts (the envelope checked)."""
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
    return patient, samples


def to_samples(records: list) -> Samples:
    try:
        return Samples.from_records(records)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise Unreadable(f"a sample is not normalised ({type(exc).__name__})") from exc


@dataclass
class PatientState:
    """What the table keeps per patient."""

    monitor: PatientMonitor
    offset: int = -1  # last samples.v1 offset applied

    def dumps(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(blob: bytes) -> PatientState:
        return pickle.loads(blob)  # noqa: S301 - our own changelog, never user input


@dataclass
class Output:
    alerts: list[AlertMessage] = field(default_factory=list)
    states: dict[bytes, bytes] = field(default_factory=dict)


class DetectorProcessor:
    """Runs patients' monitors over message batches; caches decoded state in memory."""

    def __init__(self, *, lateness_s: float, overrides: Callable[[int], dict] | None = None,
                 tz_offset: Callable[[int], int] | None = None) -> None:
        self.lateness_s = lateness_s
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
        out = Output()
        by_key: dict[bytes, list[tuple[int, bytes]]] = {}
        for key, offset, value in messages:
            by_key.setdefault(key, []).append((offset, value))
        for key, items in by_key.items():
            self._patient(key, items, get_state, out)
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
                who, recs = read_envelope(value)
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
            records.extend(recs)
            per_message.append((offset, recs))
            last = max(last, offset)
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
        events = state.monitor.update(samples) if len(samples) else []
        for ev in events:
            out.alerts.append(AlertMessage.from_event(patient, ev))
        self.stats.alerts += len(events)
        if last > state.offset:
            state.offset = last
            blob = state.dumps()
            out.states[key] = blob
            self._cache[key] = (blob, state)
