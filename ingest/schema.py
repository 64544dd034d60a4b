"""The one schema module for samples.v1: every sample is validated here, once, at the edge.

The ingest API, the bulk importers and the simulator all call it; the sink calls it
again only to read a message back (``parse_message``) and never re-judges values.

A device upload looks like::

    {"schema_version": 1, "batch_id": "watch-42-000193",
     "samples": [
        {"metric": "heart_rate", "time": "2026-11-26T07:01:00+01:00", "value": 62},
        {"metric": "steps", "time": 1764140460000, "end": 1764140520000, "value": 31},
        {"metric": "sleep_stage", "time": "...", "end": "...", "stage": "deep"},
        {"metric": "activity", "time": "...", "end": "...", "type": "running",
         "intensity": "vigorous", "energy": 212.5},
        {"metric": "hrv_rmssd", "time": "...", "value": 48.1}]}

Times are RFC 3339 with an offset, or epoch milliseconds. A bad batch is refused
whole: ``BatchError.errors`` lists each bad field (``samples[3].value``) and why.
Names and units follow Open mHealth; ``METRICS[...].loinc`` gives the FHIR code
(empty where LOINC has none: api/fhir.py then uses the project's own code system).
"""

from __future__ import annotations

import hashlib
import math
import re
import time as _time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

SCHEMA_VERSION = 1
MAX_ERRORS = 50
MIN_TIME_MS = 631_152_000_000  # 1990-01-01T00:00:00Z: older data is a clock error
MAX_INTERVAL_MS = 24 * 3600 * 1000
BATCH_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    code: int  # stored in the samples table's metric column
    unit: str
    loinc: str
    display: str
    interval: bool  # has an end time
    low: float | None = None  # smallest possible value, inclusive
    high: float | None = None  # largest possible value, inclusive


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("heart_rate", 1, "beats/min", "8867-4", "Heart rate", False, 20, 300),
        MetricSpec("steps", 2, "steps", "55423-8", "Number of steps", True, 0, 100_000),
        MetricSpec("sleep_stage", 3, "min", "93832-4", "Sleep duration", True),
        MetricSpec("activity", 4, "kcal", "41981-2", "Calories burned", True, 0, 20_000),
        # No LOINC term for RMSSD (80404-7 is SDNN, another measure): "" = the local code.
        MetricSpec("hrv_rmssd", 5, "ms", "", "Heart rate variability (RMSSD)", False, 1, 500),
    )
}
METRIC_BY_CODE = {m.code: m for m in METRICS.values()}
SLEEP_STAGES = ("awake", "light", "deep", "rem", "asleep")
INTENSITIES = {"light": 1, "moderate": 2, "vigorous": 3}
INTENSITY_BY_LEVEL = {v: k for k, v in INTENSITIES.items()}
MAX_STEPS_PER_MINUTE = 400

_ALLOWED_KEYS = {
    "heart_rate": {"metric", "time", "value"},
    "hrv_rmssd": {"metric", "time", "value"},
    "steps": {"metric", "time", "end", "value"},
    "sleep_stage": {"metric", "time", "end", "stage"},
    "activity": {"metric", "time", "end", "type", "intensity", "energy"},
}
_UPLOAD_KEYS = {"schema_version", "batch_id", "samples"}


class BatchError(ValueError):
    """A refused batch. ``errors`` is a list of ``{"field": ..., "reason": ...}``."""

    def __init__(self, errors: list[dict[str, str]], status: int = 400):
        self.errors = errors
        self.status = status
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5]))


@dataclass(frozen=True, slots=True)
class Batch:
    """A validated upload. ``samples`` are normalised: times are epoch milliseconds."""

    batch_id: str
    patient: int
    device: int | None
    samples: list[dict[str, Any]]
    digest: str
    source: str = "api"
    received_ms: int = 0


def now_ms() -> int:
    return int(_time.time() * 1000)


class _Errors:
    __slots__ = ("items", "dropped")

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []
        self.dropped = 0

    def add(self, field: str, reason: str) -> None:
        if len(self.items) < MAX_ERRORS:
            self.items.append({"field": field, "reason": reason})
        else:
            self.dropped += 1

    def raise_if_any(self, status: int = 400) -> None:
        if self.items:
            items = list(self.items)
            if self.dropped:
                items.append({"field": "samples", "reason": f"and {self.dropped} more errors"})
            raise BatchError(items, status)


def _time_ms(value: Any, field: str, errors: _Errors, latest_ms: int | None) -> int | None:
    if isinstance(value, bool):
        errors.add(field, "must be an RFC 3339 time with offset or epoch milliseconds, not a boolean")
        return None
    if isinstance(value, int):
        ms = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            errors.add(field, "must be a finite number of epoch milliseconds")
            return None
        ms = int(value)
    elif isinstance(value, str):
        if len(value) < 16 or len(value) > 40 or "T" not in value:
            errors.add(field, f"{value[:40]!r} is not an RFC 3339 date-time")
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            errors.add(field, f"{value[:40]!r} is not an RFC 3339 date-time")
            return None
        if parsed.tzinfo is None:
            errors.add(field, "must carry a UTC offset (for example +01:00 or Z)")
            return None
        ms = int(parsed.timestamp() * 1000)
    else:
        errors.add(field, f"must be an RFC 3339 time or epoch milliseconds, not {type(value).__name__}")
        return None
    if ms < MIN_TIME_MS:
        errors.add(field, "is before 1990-01-01 (epoch seconds sent as milliseconds?)")
        return None
    if latest_ms is not None and ms > latest_ms:
        errors.add(field, "is more than 5 minutes in the future")
        return None
    return ms


def _number(value: Any, field: str, errors: _Errors, spec: MetricSpec) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.add(field, f"must be a number, not {type(value).__name__}")
        return None
    v = float(value)
    if not math.isfinite(v):
        errors.add(field, "must be a finite number")
        return None
    if (spec.low is not None and v < spec.low) or (spec.high is not None and v > spec.high):
        errors.add(field, f"{v:g} {spec.unit} is impossible for {spec.name} "
                          f"(allowed {spec.low:g} to {spec.high:g})")
        return None
    return v


def validate_sample(
    s: Any, prefix: str, errors: _Errors, latest_ms: int | None
) -> dict[str, Any] | None:
    """Check one sample; return its normalised form, or None after recording errors."""
    # Fast path for the common, well-formed point sample (epoch-ms time, numeric value);
    # anything unusual falls through to the full checks below, which explain errors.
    if type(s) is dict and len(s) == 3:
        metric = s.get("metric")
        if metric == "heart_rate" or metric == "hrv_rmssd":
            t = s.get("time")
            v = s.get("value")
            if type(t) is int and (type(v) is int or type(v) is float) and t >= MIN_TIME_MS and (
                latest_ms is None or t <= latest_ms
            ):
                spec = METRICS[metric]
                if spec.low <= v <= spec.high:
                    return {"metric": metric, "time": t, "value": float(v)}
    if not isinstance(s, dict):
        errors.add(prefix, f"must be an object, not {type(s).__name__}")
        return None
    metric = s.get("metric")
    spec = METRICS.get(metric) if isinstance(metric, str) else None
    if spec is None:
        errors.add(f"{prefix}.metric", f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
        return None
    allowed = _ALLOWED_KEYS[metric]
    if not allowed.issuperset(s):
        for key in sorted(set(s) - allowed):
            errors.add(f"{prefix}.{key}", f"is not a field of {metric}")
        return None
    n_before = len(errors.items) + errors.dropped
    if "time" not in s:
        errors.add(f"{prefix}.time", "is required")
        return None
    t = _time_ms(s["time"], f"{prefix}.time", errors, latest_ms)
    out: dict[str, Any] = {"metric": metric, "time": t}
    if spec.interval:
        if "end" not in s:
            errors.add(f"{prefix}.end", f"is required for {metric}")
            return None
        end = _time_ms(s["end"], f"{prefix}.end", errors, latest_ms)
        if t is not None and end is not None:
            if end <= t:
                errors.add(f"{prefix}.end", "must be after time")
            elif end - t > MAX_INTERVAL_MS:
                errors.add(f"{prefix}.end", "interval is longer than 24 hours")
        out["end"] = end
    if metric == "sleep_stage":
        stage = s.get("stage")
        if stage not in SLEEP_STAGES:
            errors.add(f"{prefix}.stage", f"must be one of {', '.join(SLEEP_STAGES)}, not {stage!r}")
        out["stage"] = stage
        out["value"] = None
    elif metric == "activity":
        kind = s.get("type")
        if not isinstance(kind, str) or not 1 <= len(kind) <= 64:
            errors.add(f"{prefix}.type", "must be a text of 1 to 64 characters")
        intensity = s.get("intensity")
        if intensity not in INTENSITIES:
            errors.add(f"{prefix}.intensity", f"must be one of {', '.join(INTENSITIES)}, not {intensity!r}")
        energy = s.get("energy")
        out["type"] = kind
        out["intensity"] = intensity
        out["value"] = None if energy is None else _number(energy, f"{prefix}.energy", errors, spec)
    else:
        if "value" not in s:
            errors.add(f"{prefix}.value", "is required")
            return None
        v = _number(s["value"], f"{prefix}.value", errors, spec)
        out["value"] = v
        if (
            metric == "steps" and v is not None and t is not None
            and out.get("end") is not None and out["end"] > t
            and v > MAX_STEPS_PER_MINUTE * max(1.0, (out["end"] - t) / 60_000)
        ):
            errors.add(f"{prefix}.value", f"{v:g} steps is impossible in that interval "
                                          f"(at most {MAX_STEPS_PER_MINUTE} a minute)")
    if len(errors.items) + errors.dropped > n_before:
        return None
    return out


def digest_samples(samples: list[dict[str, Any]]) -> str:
    return hashlib.sha256(orjson.dumps(samples, option=orjson.OPT_SORT_KEYS)).hexdigest()


def validate_upload(
    obj: Any, *, patient: int, device: int | None, max_samples: int,
    max_future_s: int = 300, now: int | None = None, source: str = "api",
) -> Batch:
    """Validate a device upload (already JSON-decoded) and return the normalised Batch."""
    errors = _Errors()
    if not isinstance(obj, dict):
        raise BatchError([{"field": "(body)", "reason": "must be a JSON object"}])
    for key in sorted(set(obj) - _UPLOAD_KEYS):
        errors.add(key, "is not a field of an upload")
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        errors.add("schema_version", f"unsupported version {version!r} (this server reads {SCHEMA_VERSION})")
    batch_id = obj.get("batch_id")
    if not isinstance(batch_id, str) or not BATCH_ID_RE.match(batch_id):
        errors.add("batch_id", "is required: 1 to 128 letters, digits or . _ : -")
    samples = obj.get("samples")
    if not isinstance(samples, list):
        errors.add("samples", "is required and must be a list")
        errors.raise_if_any()
        raise AssertionError  # unreachable
    if not samples:
        errors.add("samples", "is empty")
    if len(samples) > max_samples:
        errors.add("samples", f"has {len(samples)} samples; at most {max_samples} per batch")
        errors.raise_if_any(status=413)
    current = now_ms() if now is None else now
    latest = current + max_future_s * 1000
    normalised = []
    append = normalised.append
    for i, s in enumerate(samples):
        out = validate_sample(s, f"samples[{i}]", errors, latest)
        if out is not None:
            append(out)
    errors.raise_if_any()
    return Batch(
        batch_id=batch_id, patient=patient, device=device, samples=normalised,
        digest=digest_samples(normalised), source=source, received_ms=current,
    )


def to_message(batch: Batch) -> bytes:
    """The samples.v1 Kafka value for a validated batch."""
    return orjson.dumps(
        {
            "schema_version": SCHEMA_VERSION,
            "patient": batch.patient,
            "device": batch.device,
            "batch_id": batch.batch_id,
            "source": batch.source,
            "received_ms": batch.received_ms,
            "digest": batch.digest,
            "samples": batch.samples,
        }
    )


def parse_message(raw: bytes) -> Batch:
    """Read a samples.v1 message back. Raises BatchError naming what is wrong.

    Samples were validated at the edge; here only the envelope and the normalised
    shape are checked, so a message written by a foreign producer cannot crash a sink.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BatchError([{"field": "(message)", "reason": f"not JSON: {exc}"}]) from exc
    if not isinstance(obj, dict):
        raise BatchError([{"field": "(message)", "reason": "must be a JSON object"}])
    errors = _Errors()
    if obj.get("schema_version") != SCHEMA_VERSION:
        errors.add("schema_version", f"unsupported {obj.get('schema_version')!r}")
    patient = obj.get("patient")
    if not isinstance(patient, int) or isinstance(patient, bool) or patient <= 0:
        errors.add("patient", "must be a positive integer")
    device = obj.get("device")
    if device is not None and (not isinstance(device, int) or isinstance(device, bool)):
        errors.add("device", "must be an integer or null")
    batch_id = obj.get("batch_id")
    if not isinstance(batch_id, str) or not BATCH_ID_RE.match(batch_id):
        errors.add("batch_id", "is missing or malformed")
    samples = obj.get("samples")
    if not isinstance(samples, list) or not samples:
        errors.add("samples", "must be a non-empty list")
    errors.raise_if_any()
    for i, s in enumerate(samples):
        if not isinstance(s, dict) or s.get("metric") not in METRICS or not isinstance(s.get("time"), int):
            errors.add(f"samples[{i}]", "is not a normalised sample (metric and epoch-ms time)")
            break
    errors.raise_if_any()
    digest = obj.get("digest")
    return Batch(
        batch_id=batch_id, patient=patient, device=device, samples=samples,
        digest=digest if isinstance(digest, str) else digest_samples(samples),
        source=str(obj.get("source", "api")), received_ms=int(obj.get("received_ms") or 0),
    )
