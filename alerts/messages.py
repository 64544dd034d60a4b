"""The alerts.v1 contract (the detectors write it, ``alerts.sink`` reads it): one JSON message per change of an alert episode.

Key: the patient id as ASCII (co-partitioned with samples.v1). Value::

    {"schema_version": 1, "patient": 42, "detector": "nightsignal_rhr",
     "severity": "red", "state": "open" | "update" | "closed", "seq": 2,
     "window_start": <epoch ms>, "window_end": <epoch ms>,
     "evidence": {...values, baseline, threshold...}, "emitted_ms": <epoch ms>}

An alert is identified by (patient, detector, window_start); ``seq`` orders the
changes of one episode, so applying a message twice, or an older one after a newer
one, changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from alerts.states import SEVERITIES

ALERT_SCHEMA_VERSION = 1
STATES = ("open", "update", "closed")


class AlertError(ValueError):
    """An alerts.v1 message that cannot be read."""


class EpisodeEvent(Protocol):
    """What a detector's event carries (``streams.detectors.Event`` has these fields)."""

    @property
    def detector(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def window_start(self) -> int: ...
    @property
    def window_end(self) -> int: ...
    @property
    def evidence(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class AlertMessage:
    patient: int
    detector: str
    severity: str
    state: str
    seq: int
    window_start: int
    window_end: int
    evidence: dict[str, Any]
    emitted_ms: int = 0

    @classmethod
    def from_event(cls, patient: int, event: EpisodeEvent) -> AlertMessage:
        return cls(patient, event.detector, event.severity, event.state, event.seq,
                   event.window_start, event.window_end, event.evidence, int(time.time() * 1000))

    def key(self) -> bytes:
        return str(self.patient).encode()

    def dumps(self) -> bytes:
        return orjson.dumps({
            "schema_version": ALERT_SCHEMA_VERSION, "patient": self.patient,
            "detector": self.detector, "severity": self.severity, "state": self.state,
            "seq": self.seq, "window_start": self.window_start, "window_end": self.window_end,
            "evidence": self.evidence, "emitted_ms": self.emitted_ms,
        })

    @classmethod
    def loads(cls, raw: bytes) -> AlertMessage:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise AlertError(f"not JSON: {exc}") from exc
        if not isinstance(obj, dict) or obj.get("schema_version") != ALERT_SCHEMA_VERSION:
            raise AlertError("not an alerts.v1 object")
        try:
            msg = cls(int(obj["patient"]), str(obj["detector"]), str(obj["severity"]),
                      str(obj["state"]), int(obj["seq"]), int(obj["window_start"]),
                      int(obj["window_end"]), dict(obj.get("evidence") or {}),
                      int(obj.get("emitted_ms") or 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise AlertError(f"missing or malformed field: {exc}") from exc
        if msg.severity not in SEVERITIES:
            raise AlertError(f"unknown severity {msg.severity!r}")
        if msg.state not in STATES:
            raise AlertError(f"unknown state {msg.state!r}")
        if msg.patient <= 0 or not msg.detector or len(msg.detector) > 48:
            raise AlertError("bad patient or detector")
        return msg
