"""POST /api/v1/ingest/batches against the real broker and the real PostgreSQL."""

from __future__ import annotations

import orjson
import pytest
from django.test import Client

from ingest.models import IngestBatch
from ingest.schema import now_ms
from tests.ingest.conftest import hr_samples, topic_count

URL = "/api/v1/ingest/batches"
pytestmark = pytest.mark.django_db


def post(client: Client, token: str | None, body, content_type="application/json"):
    headers = {"HTTP_AUTHORIZATION": f"Device {token}"} if token else {}
    data = body if isinstance(body, (bytes, str)) else orjson.dumps(body)
    return client.post(URL, data=data, content_type=content_type, **headers)


def test_a_valid_batch_is_acknowledged_by_kafka_before_202(kafka_topics, patient_with_device, client):
    patient, token, _ = patient_with_device
    r = post(client, token, {"batch_id": "watch-1", "samples": hr_samples(500, now_ms() - 600 * 60_000)})
    assert r.status_code == 202, r.content
    assert r.json() == {"batch_id": "watch-1", "status": "accepted", "samples": 500, "duplicate": False}
    row = IngestBatch.objects.get(patient=patient, batch_id="watch-1")
    assert row.status == "accepted" and row.accepted_at is not None and row.n_samples == 500
    assert topic_count(kafka_topics["bootstrap"], kafka_topics["samples"]) == 1


def test_resending_a_batch_id_answers_the_same_and_produces_nothing_more(kafka_topics, patient_with_device, client):
    _, token, _ = patient_with_device
    body = {"batch_id": "again", "samples": hr_samples(10, now_ms() - 3_600_000)}
    first = post(client, token, body)
    second = post(client, token, body)
    assert first.status_code == second.status_code == 202
    assert second.json()["samples"] == 10 and second.json()["duplicate"] is True
    assert topic_count(kafka_topics["bootstrap"], kafka_topics["samples"]) == 1


def test_a_batch_id_reused_for_other_content_is_refused_with_409(kafka_topics, patient_with_device, client):
    _, token, _ = patient_with_device
    start = now_ms() - 3_600_000
    assert post(client, token, {"batch_id": "b", "samples": hr_samples(3, start)}).status_code == 202
    r = post(client, token, {"batch_id": "b", "samples": hr_samples(4, start)})
    assert r.status_code == 409
    assert r.json()["errors"][0]["field"] == "batch_id"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field"),
    [
        (b"{not json", "application/json", 400, "(body)"),
        ({"batch_id": "x", "samples": [{"metric": "heart_rate", "time": 1_764_000_000_000, "value": 0}]},
         "application/json", 400, "samples[0].value"),
        ({"batch_id": "x", "samples": [{"metric": "heart_rate", "time": 1_764_000_000_000, "value": 60}]},
         "text/plain", 415, "Content-Type"),
        ({"batch_id": "x", "samples": [{"metric": "heart_rate", "time": 1_764_000_000_000, "value": 60}] * 5001},
         "application/json", 413, "samples"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_field_and_nothing_is_written(
    kafka_topics, patient_with_device, client, body, content_type, status, field
):
    patient, token, _ = patient_with_device
    r = post(client, token, body, content_type)
    assert r.status_code == status, r.content
    assert field in [e["field"] for e in r.json()["errors"]]
    assert not IngestBatch.objects.filter(patient=patient).exists()
    assert topic_count(kafka_topics["bootstrap"], kafka_topics["samples"]) == 0


def test_a_body_over_the_size_limit_is_refused_with_413(kafka_topics, patient_with_device, client, settings):
    _, token, _ = patient_with_device
    settings.INGEST_MAX_BODY_BYTES = 2048
    r = post(client, token, {"batch_id": "big", "samples": hr_samples(100, now_ms() - 3_600_000)})
    assert r.status_code == 413
    assert "over the limit" in r.json()["errors"][0]["reason"]


@pytest.mark.parametrize("token", [None, "hsd_not-a-real-token", "revoked"])
def test_unknown_missing_or_revoked_tokens_are_refused(kafka_topics, patient_with_device, client, token):
    patient, real, _ = patient_with_device
    if token == "revoked":
        patient.devices.get().revoke()
        token = real
    r = post(client, token, {"batch_id": "t", "samples": hr_samples(1, now_ms() - 60_000)})
    assert r.status_code == 401
    assert r.json()["errors"]
    assert not IngestBatch.objects.filter(patient=patient).exists()


def test_a_patient_login_cannot_push_data(kafka_topics, patient_with_device, client):
    _, _, user = patient_with_device
    client.force_login(user)
    r = client.post(URL, data=orjson.dumps({"batch_id": "t", "samples": hr_samples(1, now_ms())}),
                    content_type="application/json")
    assert r.status_code in (401, 403)


def test_a_device_over_its_rate_limit_gets_429_with_retry_after(kafka_topics, patient_with_device, client, settings):
    _, token, _ = patient_with_device
    settings.INGEST_RATE_LIMIT_PER_MIN = 3
    codes = [post(client, token, {"batch_id": f"r{i}", "samples": hr_samples(1, now_ms() - 60_000 * (i + 1))}).status_code
             for i in range(5)]
    assert codes[:3] == [202, 202, 202]
    assert 429 in codes[3:]
    r = post(client, token, {"batch_id": "r9", "samples": hr_samples(1, now_ms() - 60_000)})
    assert r.status_code == 429 and int(r["Retry-After"]) > 0


def test_when_the_broker_does_not_answer_the_client_gets_503_and_may_retry(patient_with_device, client, settings):
    from lib import kafka

    patient, token, _ = patient_with_device
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9"  # nothing listens there
    settings.KAFKA_ACK_TIMEOUT_S = 1
    kafka.reset_producer()
    try:
        r = post(client, token, {"batch_id": "later", "samples": hr_samples(2, now_ms() - 60_000)})
    finally:
        kafka.reset_producer()
    assert r.status_code == 503
    assert r["Retry-After"]
    assert IngestBatch.objects.get(patient=patient, batch_id="later").status in {"failed", "pending"}
