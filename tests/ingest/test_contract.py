"""The samples.v1 JSON Schema (ingest/contract.py): published, and true of what the ingest
path really takes and really writes to Kafka; bad uploads and messages fail it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from ingest.contract import SCHEMAS, message_schema, upload_schema
from ingest.schema import now_ms, to_message, validate_upload

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def _every_metric(start: int) -> list[dict]:
    return [
        {"metric": "heart_rate", "time": start, "value": 62},
        {"metric": "heart_rate", "time": "2026-11-26T07:01:00+01:00", "value": 61.5},
        {"metric": "steps", "time": start, "end": start + 60_000, "value": 31},
        {"metric": "sleep_stage", "time": start - 3_600_000, "end": start - 3_000_000, "stage": "deep"},
        {"metric": "activity", "time": start, "end": start + 600_000, "type": "running",
         "intensity": "vigorous", "energy": 212.5},
        {"metric": "activity", "time": start, "end": start + 600_000, "type": "walk", "intensity": "light"},
        {"metric": "hrv_rmssd", "time": start, "value": 48.1},
    ]


def _validator(schema: dict) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        return [m.value for m in consumer]
    finally:
        consumer.close()


def test_the_published_schemas_are_the_ones_the_code_builds():
    for name, build in SCHEMAS.items():
        published = json.loads((ROOT / "docs" / "schemas" / f"{name}.json").read_text())
        assert published == build(), f"docs/schemas/{name}.json is stale: python -m ingest.contract"


def test_the_api_serves_the_schemas_to_anyone(client, settings):
    settings.INGEST_MAX_SAMPLES = 123
    r = client.get("/api/v1/schemas/samples.v1.upload.json")
    assert r.status_code == 200 and r["Content-Type"] == "application/schema+json"
    assert r.json()["properties"]["samples"]["maxItems"] == 123
    assert client.get("/api/v1/schemas/samples.v1.message.json").json() == message_schema()
    assert client.get("/api/v1/schemas/nothing.json").status_code == 404


def test_what_the_ingest_endpoint_takes_and_writes_to_kafka_fits_the_schemas(
        kafka_topics, patient_with_device, client):
    patient, token, _ = patient_with_device
    body = {"schema_version": 1, "batch_id": "contract-1", "samples": _every_metric(now_ms() - 3_600_000)}
    _validator(upload_schema()).validate(body)
    r = client.post("/api/v1/ingest/batches", data=orjson.dumps(body), content_type="application/json",
                    HTTP_AUTHORIZATION=f"Device {token}")
    assert r.status_code == 202, r.content
    messages = _read_all(kafka_topics["bootstrap"], kafka_topics["samples"])
    assert len(messages) == 1
    message = orjson.loads(messages[0])
    assert message["patient"] == patient.pk and len(message["samples"]) == 7
    _validator(message_schema()).validate(message)


def test_an_importers_batch_without_a_device_fits_the_message_schema():
    batch = validate_upload({"batch_id": "import-1", "samples": _every_metric(now_ms() - 3_600_000)},
                            patient=7, device=None, max_samples=100, source="import")
    _validator(message_schema()).validate(orjson.loads(to_message(batch)))


BAD_UPLOADS = [
    ({"samples": [{"metric": "heart_rate", "time": 1_764_000_000_000, "value": 60}]}, "batch_id"),
    ({"batch_id": "x", "samples": []}, "samples"),
    ({"batch_id": "x", "samples": [{"metric": "heart_rate", "time": 1_764_000_000_000, "value": 0}]}, "value"),
    ({"batch_id": "x", "samples": [{"metric": "pulse", "time": 1_764_000_000_000, "value": 60}]}, "metric"),
    ({"batch_id": "x", "samples": [{"metric": "heart_rate", "time": "2026-11-26T07:01:00", "value": 60}]},
     "time"),
    ({"batch_id": "x", "samples": [{"metric": "steps", "time": 1_764_000_000_000, "value": 5}]}, "end"),
    ({"batch_id": "x", "samples": [{"metric": "sleep_stage", "time": 1_764_000_000_000,
                                    "end": 1_764_000_060_000, "stage": "dozing"}]}, "stage"),
    ({"batch_id": "x", "samples": [{"metric": "heart_rate", "time": 1_764_000_000_000, "value": 60,
                                    "bpm": 60}]}, "bpm"),
    ({"batch_id": "x", "samples": [{"metric": "heart_rate", "time": 631_151_999_999, "value": 60}]}, "time"),
    ({"batch_id": "has space", "samples": [{"metric": "heart_rate", "time": 1_764_000_000_000, "value": 60}]},
     "batch_id"),
]


@pytest.mark.parametrize(("body", "word"), BAD_UPLOADS, ids=[w for _, w in BAD_UPLOADS])
def test_a_bad_upload_fails_the_schema_and_the_server_alike(body, word):
    errors = list(_validator(upload_schema()).iter_errors(body))
    assert errors, body
    assert any(word in (e.message + " ".join(map(str, e.absolute_path)) + json.dumps(e.instance))
               for e in errors), [e.message for e in errors]
    with pytest.raises(ValueError):
        validate_upload(body, patient=1, device=1, max_samples=100)


def test_a_bad_message_fails_the_message_schema():
    good = orjson.loads(to_message(validate_upload(
        {"batch_id": "m", "samples": _every_metric(now_ms() - 3_600_000)}, patient=3, device=4,
        max_samples=100)))
    validator = _validator(message_schema())
    validator.validate(good)
    bad = [
        {**good, "patient": 0},
        {**good, "samples": [{**good["samples"][0], "time": "2026-11-26T07:01:00Z"}]},  # not normalised
        {k: v for k, v in good.items() if k != "digest"},
        {**good, "schema_version": 2},
        {**good, "samples": [{"metric": "sleep_stage", "time": good["samples"][0]["time"],
                              "end": good["samples"][0]["time"] + 60_000, "stage": "deep"}]},  # value missing
    ]
    for message in bad:
        assert not validator.is_valid(message), message
