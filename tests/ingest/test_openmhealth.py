"""Open mHealth data points: accepted on ingest (real broker, real sink store) and emitted by
the samples read under Accept negotiation, for heart rate and step count."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from rest_framework.test import APIClient

from api import auth
from ingest import openmhealth
from ingest.models import IngestBatch
from ingest.schema import BatchError, now_ms, parse_message, to_message, validate_upload
from tests.api.factories import put_samples
from tests.ingest.conftest import topic_count

OMH = "application/vnd.openmhealth+json"
pytestmark = pytest.mark.django_db


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _hr(ms: int, bpm, pid="hr-1") -> dict:
    return {"header": {"id": pid, "creation_date_time": _iso(ms),
                       "schema_id": {"namespace": "omh", "name": "heart-rate", "version": "2.0"}},
            "body": {"heart_rate": {"value": bpm, "unit": "beats/min"},
                     "effective_time_frame": {"date_time": _iso(ms)}}}


def _steps(ms: int, count, pid="st-1", *, v1=False, duration=False) -> dict:
    frame = ({"start_date_time": _iso(ms), "duration": {"value": 10, "unit": "min"}} if duration
             else {"start_date_time": _iso(ms), "end_date_time": _iso(ms + 600_000)})
    return {"header": {"id": pid, "creation_date_time": _iso(ms),
                       "schema_id": {"namespace": "omh", "name": "step-count", "version": "1.0" if v1 else "2.0"}},
            "body": {"step_count": count if v1 else {"value": count, "unit": "steps"},
                     "effective_time_frame": {"time_interval": frame}}}


def test_data_points_of_both_schemas_and_versions_become_samples():
    t = now_ms() - 3_600_000
    upload = openmhealth.to_upload([_hr(t, 64), _steps(t, 812, "a"), _steps(t, 90, "b", v1=True, duration=True)])
    batch = validate_upload(upload, patient=1, device=1, max_samples=100)
    assert [(s["metric"], s["value"]) for s in batch.samples] == [("heart_rate", 64), ("steps", 812),
                                                                   ("steps", 90)]
    assert batch.samples[2]["end"] - batch.samples[2]["time"] == 600_000
    again = openmhealth.to_upload([_steps(t, 90, "b", v1=True, duration=True), _hr(t, 64), _steps(t, 812, "a")])
    assert again["batch_id"] == upload["batch_id"]  # the same points: the same batch


@pytest.mark.parametrize(("point", "field"), [
    ({"body": {}}, "[0]"),
    ({**_hr(1_764_000_000_000, 60), "header": {"id": "x", "schema_id": {"name": "blood-glucose"}}},
     "[0].header.schema_id.name"),
    ({"header": _hr(0, 0)["header"], "body": {"heart_rate": {"value": 60, "unit": "bpm"},
                                              "effective_time_frame": {"date_time": "2026-11-26T07:00:00Z"}}},
     "[0].body.heart_rate.unit"),
    ({"header": _steps(0, 0)["header"], "body": {"step_count": 5, "effective_time_frame": {
        "date_time": "2026-11-26T07:00:00Z"}}}, "[0].body.effective_time_frame"),
])
def test_a_malformed_data_point_is_refused_naming_the_field(point, field):
    with pytest.raises(BatchError) as err:
        openmhealth.to_upload([point])
    assert err.value.errors[0]["field"] == field


def test_the_ingest_endpoint_takes_open_mhealth_and_sends_samples_v1(kafka_topics, patient_with_device, client):
    patient, token, _ = patient_with_device
    t = now_ms() - 3_600_000
    body = orjson.dumps([_hr(t, 64), _hr(t + 60_000, 66, "hr-2"), _steps(t, 812)])
    r = client.post("/api/v1/ingest/batches", data=body, content_type=OMH, HTTP_AUTHORIZATION=f"Device {token}")
    assert r.status_code == 202, r.content
    assert r.json()["samples"] == 3 and r.json()["batch_id"].startswith("omh-")
    assert IngestBatch.objects.get(patient=patient).n_samples == 3
    assert topic_count(kafka_topics["bootstrap"], kafka_topics["samples"]) == 1
    bad = client.post("/api/v1/ingest/batches", data=orjson.dumps([_hr(t, 0, "z")]), content_type=OMH,
                      HTTP_AUTHORIZATION=f"Device {token}")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "samples[0].value"


def test_the_samples_read_emits_open_mhealth_when_asked(patient_with_device):
    patient, _, user = patient_with_device
    t = (now_ms() // 3_600_000 - 2) * 3_600_000
    put_samples(patient.pk, "heart_rate", [t, t + 60_000], [64.04, 66.0])
    put_samples(patient.pk, "steps", [t], [812], ends=[t + 600_000])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {auth.issue(user)[1]}")
    base = f"/api/v1/patients/{patient.pk}/samples"
    hr = api.get(f"{base}?metric=heart_rate&resolution=raw", HTTP_ACCEPT=OMH)
    assert hr.status_code == 200 and hr["Content-Type"].startswith(OMH)
    points = orjson.loads(hr.content)
    assert [p["body"]["heart_rate"] for p in points] == [{"value": 64.0, "unit": "beats/min"},
                                                         {"value": 66.0, "unit": "beats/min"}]
    assert points[0]["header"]["schema_id"] == {"namespace": "omh", "name": "heart-rate", "version": "2.0"}
    assert points[0]["body"]["effective_time_frame"] == {"date_time": _iso(t).replace("+00:00", "Z")}
    again = orjson.loads(api.get(f"{base}?metric=heart_rate&resolution=raw", HTTP_ACCEPT=OMH).content)
    assert [p["header"]["id"] for p in again] == [p["header"]["id"] for p in points]
    steps = orjson.loads(api.get(f"{base}?metric=steps&resolution=raw", HTTP_ACCEPT=OMH).content)
    assert steps[0]["body"]["step_count"] == {"value": 812, "unit": "steps"}
    assert steps[0]["body"]["effective_time_frame"]["time_interval"]["end_date_time"] == _iso(
        t + 600_000).replace("+00:00", "Z")
    hourly = orjson.loads(api.get(f"{base}?metric=heart_rate&resolution=1h", HTTP_ACCEPT=OMH).content)
    assert hourly[0]["body"]["descriptive_statistic"] == "average" and hourly[0]["body"]["heart_rate"]["value"] == 65.0
    # What is emitted is accepted back (a round trip through the converter).
    back = validate_upload(openmhealth.to_upload(points + steps), patient=1, device=1, max_samples=10)
    assert [s["value"] for s in back.samples] == [64.0, 66.0, 812]
    assert api.get(f"{base}?metric=sleep_stage", HTTP_ACCEPT=OMH).status_code == 406
    assert "points" in api.get(f"{base}?metric=heart_rate").json()  # JSON stays the default


def test_a_message_made_from_open_mhealth_reads_back():
    t = now_ms() - 3_600_000
    batch = validate_upload(openmhealth.to_upload([_hr(t, 64)]), patient=5, device=None, max_samples=10)
    assert parse_message(to_message(batch)).samples == batch.samples

