"""The samples.v1 contract as JSON Schema (draft 2020-12), built from ``ingest.schema``.

Two documents, because two shapes cross a boundary:

* ``upload_schema()``: what a device posts to ``/api/v1/ingest/batches`` (times as RFC 3339
  with an offset or epoch milliseconds);
* ``message_schema()``: the Kafka value on ``samples.v1`` that ``ingest.schema.to_message``
  writes and the sinks and the detector worker read (times normalised to epoch ms).

They are generated from the same constants the validator uses (metrics, ranges, sleep
stages, intensities), so they cannot drift from it; docs/schemas/ holds the published
copies and a test keeps those equal to what this module builds. The schema states the
shape and ranges; a few rules stay in code only (``end`` after ``time``, an interval of at
most 24 h, at most 400 steps a minute, no time more than 5 minutes ahead).
"""

from __future__ import annotations

from typing import Any

from ingest.schema import (
    BATCH_ID_RE,
    INTENSITIES,
    METRICS,
    MIN_TIME_MS,
    SCHEMA_VERSION,
    SLEEP_STAGES,
)

BASE_ID = "https://healthstream.invalid/schemas/"
UPLOAD_ID = f"{BASE_ID}samples.v1.upload.json"
MESSAGE_ID = f"{BASE_ID}samples.v1.message.json"

_EPOCH_MS = {"type": "integer", "minimum": MIN_TIME_MS, "description": "epoch milliseconds (UTC)"}
_RFC3339 = {"type": "string", "format": "date-time", "minLength": 16, "maxLength": 40,
            "pattern": "T.*(Z|z|[+-][0-9]{2}:?[0-9]{2})$",
            "description": "RFC 3339 date-time with a UTC offset"}


def _value(metric: str) -> dict[str, Any]:
    spec = METRICS[metric]
    out: dict[str, Any] = {"type": "number", "description": spec.unit}
    if spec.low is not None:
        out["minimum"] = spec.low
    if spec.high is not None:
        out["maximum"] = spec.high
    return out


def _sample(metric: str, time: dict[str, Any], normalised: bool) -> dict[str, Any]:
    """One metric's sample: its fields, which are required, and nothing else."""
    props: dict[str, Any] = {"metric": {"const": metric}, "time": time}
    required = ["metric", "time"]
    if METRICS[metric].interval:
        props["end"] = time
        required.append("end")
    if metric == "sleep_stage":
        props["stage"] = {"enum": list(SLEEP_STAGES)}
        required.append("stage")
        if normalised:
            props["value"] = {"type": "null"}
            required.append("value")
    elif metric == "activity":
        props["type"] = {"type": "string", "minLength": 1, "maxLength": 64}
        props["intensity"] = {"enum": list(INTENSITIES)}
        required += ["type", "intensity"]
        energy = _value(metric) | {"type": ["number", "null"]}
        if normalised:
            props["value"] = energy  # the energy, kcal, stored as the value
            required.append("value")
        else:
            props["energy"] = energy
    else:
        props["value"] = _value(metric)
        required.append("value")
    return {"type": "object", "title": metric, "properties": props, "required": required,
            "additionalProperties": False}


def _samples() -> dict[str, Any]:
    # A discriminator by "metric": the if/then chain names the one branch that applies,
    # so a validator reports that branch's errors rather than every alternative's.
    branches = [{"if": {"properties": {"metric": {"const": m}}, "required": ["metric"]},
                 "then": {"$ref": f"#/$defs/{m}"}} for m in METRICS]
    return {
        "type": "array", "minItems": 1,
        "items": {"type": "object", "required": ["metric"],
                  "properties": {"metric": {"enum": list(METRICS)}}, "allOf": branches},
    }


def upload_schema(max_samples: int = 5000) -> dict[str, Any]:
    """The JSON Schema of a device upload (the body of POST /api/v1/ingest/batches)."""
    samples = _samples()
    samples["maxItems"] = max_samples
    time = {"oneOf": [_EPOCH_MS | {"type": "number"}, _RFC3339]}  # the edge takes float ms too
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": UPLOAD_ID,
        "title": "samples.v1 upload",
        "description": "A device upload to POST /api/v1/ingest/batches (application/json).",
        "type": "object",
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "batch_id": {"type": "string", "pattern": BATCH_ID_RE.pattern},
            "samples": samples,
        },
        "required": ["batch_id", "samples"],
        "additionalProperties": False,
        "$defs": {m: _sample(m, time, False) for m in METRICS},
    }


def message_schema() -> dict[str, Any]:
    """The JSON Schema of a samples.v1 Kafka message (``ingest.schema.to_message``)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": MESSAGE_ID,
        "title": "samples.v1 message",
        "description": "The value of a message on the samples.v1 Kafka topic (key: the patient id).",
        "type": "object",
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "patient": {"type": "integer", "minimum": 1},
            "device": {"type": ["integer", "null"]},
            "batch_id": {"type": "string", "pattern": BATCH_ID_RE.pattern},
            "source": {"type": "string"},
            "received_ms": {"type": "integer", "minimum": 0},
            "digest": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "samples": _samples(),
        },
        "required": ["schema_version", "patient", "device", "batch_id", "source", "received_ms",
                     "digest", "samples"],
        "additionalProperties": False,
        "$defs": {m: _sample(m, _EPOCH_MS, True) for m in METRICS},
    }


SCHEMAS = {"samples.v1.upload": upload_schema, "samples.v1.message": message_schema}


def write(folder: str) -> list[str]:
    """Write every schema as ``<folder>/<name>.json`` (the published copies in docs/schemas)."""
    import json
    from pathlib import Path

    out = []
    for name, build in SCHEMAS.items():
        path = Path(folder) / f"{name}.json"
        path.write_text(json.dumps(build(), indent=2) + "\n")
        out.append(str(path))
    return out


if __name__ == "__main__":  # python -m ingest.contract docs/schemas
    import sys

    print("\n".join(write(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")))
