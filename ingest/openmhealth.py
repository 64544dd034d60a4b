"""Open mHealth data points <-> samples.v1, for heart rate and step count.

Accepted on ingest as ``Content-Type: application/vnd.openmhealth+json`` (one data point,
or a list of them) and emitted by the samples read with ``Accept:
application/vnd.openmhealth+json``. Schemas followed: ``omh:heart-rate`` (1.x/2.0:
``heart_rate`` {value, unit "beats/min"}) and ``omh:step-count`` (1.0: ``step_count`` a
number; 2.0: {value, unit "steps"}), each with an ``effective_time_frame`` of a
``date_time`` or a ``time_interval`` (start and end, or start and a duration).

Converted uploads then pass ``ingest.schema.validate_upload`` like any other, so ranges,
offsets and the future-time rule are the same. The batch id is derived from the data
points' header ids, so re-sending the same points is the same batch (idempotent).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.schema import BatchError

MEDIA_TYPE = "application/vnd.openmhealth+json"
SCHEMAS = {"heart-rate": "heart_rate", "step-count": "steps"}
METRIC_SCHEMA = {"heart_rate": ("heart-rate", "2.0"), "steps": ("step-count", "2.0")}
_DURATION_S = {"ms": 0.001, "sec": 1, "s": 1, "min": 60, "h": 3600, "hr": 3600, "d": 86400}
_ID_NAMESPACE = uuid.UUID("6f1d3a52-6d2c-4d8e-9d7a-6b0a3c1f4e21")  # this project's own namespace
MAX_POINTS = 5000


def _fail(field: str, reason: str) -> BatchError:
    return BatchError([{"field": field, "reason": reason}])


def _time_frame(frame: Any, field: str) -> tuple[str, str | None]:
    """(time, end or None) as RFC 3339 strings from an effective_time_frame."""
    if not isinstance(frame, dict):
        raise _fail(field, "must be an object with date_time or time_interval")
    if "date_time" in frame:
        if not isinstance(frame["date_time"], str):
            raise _fail(f"{field}.date_time", "must be an RFC 3339 date-time")
        return frame["date_time"], None
    interval = frame.get("time_interval")
    if not isinstance(interval, dict):
        raise _fail(field, "must hold date_time or time_interval")
    start, end = interval.get("start_date_time"), interval.get("end_date_time")
    if not isinstance(start, str):
        raise _fail(f"{field}.time_interval.start_date_time", "is required (an RFC 3339 date-time)")
    if isinstance(end, str):
        return start, end
    duration = interval.get("duration")
    if isinstance(duration, dict) and duration.get("unit") in _DURATION_S and isinstance(
            duration.get("value"), int | float) and not isinstance(duration.get("value"), bool):
        try:
            begin = datetime.fromisoformat(start)
        except ValueError:
            raise _fail(f"{field}.time_interval.start_date_time", f"{start[:40]!r} is not an RFC 3339 date-time") from None
        stop = begin + timedelta(seconds=duration["value"] * _DURATION_S[duration["unit"]])
        return start, stop.isoformat()
    raise _fail(f"{field}.time_interval", "needs end_date_time, or a duration {value, unit: sec|min|h|d}")


def _number(obj: Any, unit: str, field: str) -> Any:
    if isinstance(obj, dict):
        if obj.get("unit") != unit:
            raise _fail(f"{field}.unit", f"must be {unit!r}, not {obj.get('unit')!r}")
        return obj.get("value")
    return obj  # step-count 1.0: a bare number


def to_sample(point: Any, field: str) -> dict[str, Any]:
    """One data point as a samples.v1 sample (values are judged later, by validate_upload)."""
    if not isinstance(point, dict) or not isinstance(point.get("header"), dict) or not isinstance(
            point.get("body"), dict):
        raise _fail(field, "must be a data point: an object with header and body")
    schema = point["header"].get("schema_id")
    name = schema.get("name") if isinstance(schema, dict) else None
    if name not in SCHEMAS:
        raise _fail(f"{field}.header.schema_id.name",
                    f"{str(name)[:40]!r} is not accepted (accepted: {', '.join(SCHEMAS)})")
    body = point["body"]
    if "descriptive_statistic" in body:
        raise _fail(f"{field}.body.descriptive_statistic", "only measured values are accepted, not statistics")
    time, end = _time_frame(body.get("effective_time_frame"), f"{field}.body.effective_time_frame")
    if name == "heart-rate":
        value = _number(body.get("heart_rate"), "beats/min", f"{field}.body.heart_rate")
        return {"metric": "heart_rate", "time": time, "value": value}
    value = _number(body.get("step_count"), "steps", f"{field}.body.step_count")
    if end is None:
        raise _fail(f"{field}.body.effective_time_frame", "a step count needs a time_interval")
    return {"metric": "steps", "time": time, "end": end, "value": value}


def to_upload(obj: Any) -> dict[str, Any]:
    """A samples.v1 upload from one data point or a list of them."""
    points = obj if isinstance(obj, list) else [obj]
    if not points:
        raise _fail("(body)", "holds no data points")
    if len(points) > MAX_POINTS:
        raise BatchError([{"field": "(body)", "reason": f"{len(points)} data points; at most {MAX_POINTS}"}], 413)
    samples = [to_sample(p, f"[{i}]") for i, p in enumerate(points)]
    ids = []
    for i, p in enumerate(points):
        pid = p["header"].get("id")
        if not isinstance(pid, str) or not 1 <= len(pid) <= 128:
            raise _fail(f"[{i}].header.id", "is required: a text of 1 to 128 characters")
        ids.append(pid)
    digest = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:40]
    return {"schema_version": 1, "batch_id": f"omh-{digest}", "samples": samples}


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def data_point(patient_id: int, metric: str, time: datetime, end: datetime | None, value: float,
               *, statistic: str | None = None) -> dict[str, Any]:
    """A stored sample (or a rollup's statistic over [time, end)) as an OMH data point, with
    an id that is the same on every read."""
    name, version = METRIC_SCHEMA[metric]
    key = f"{patient_id}-{metric}-{int(time.timestamp() * 1000)}-{statistic or 'raw'}"
    frame: dict[str, Any] = ({"date_time": _iso(time)} if end is None else
                             {"time_interval": {"start_date_time": _iso(time), "end_date_time": _iso(end)}})
    body: dict[str, Any] = (
        {"heart_rate": {"value": value, "unit": "beats/min"}} if metric == "heart_rate"
        else {"step_count": {"value": value, "unit": "steps"}})
    body["effective_time_frame"] = frame
    if statistic:
        body["descriptive_statistic"] = statistic
    return {
        "header": {
            "id": str(uuid.uuid5(_ID_NAMESPACE, key)),
            "creation_date_time": _iso(end or time),
            "schema_id": {"namespace": "omh", "name": name, "version": version},
            "acquisition_provenance": {"source_name": "healthstream", "modality": "sensed"},
        },
        "body": body,
    }
