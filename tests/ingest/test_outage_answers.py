"""config/outage.py: which errors mean "a service is unreachable", the 503 they become,
and the ingest rate limiter failing open while Redis is unreachable."""

from __future__ import annotations

import logging

import orjson
import pytest
import redis
from django.db import OperationalError
from django.http import HttpResponse
from django.test import RequestFactory
from kafka.errors import KafkaTimeoutError

from config import outage
from ingest.schema import now_ms
from lib import ratelimit
from tests.conftest import free_port
from tests.ingest.conftest import hr_samples


@pytest.mark.parametrize(("exc", "service"), [
    (OperationalError("connection refused"), "database"),
    (redis.ConnectionError("refused"), "redis"),
    (KafkaTimeoutError("no ack"), "broker"),
    (ValueError("a bug"), None),
    (KeyError("a bug"), None),
])
def test_only_errors_that_say_a_service_is_unreachable_name_one(exc, service):
    assert outage.unreachable(exc) == service


def test_a_view_that_hits_an_outage_answers_503_with_retry_after_in_the_api_format():
    middleware = outage.ServiceUnavailableMiddleware(lambda request: HttpResponse("unused"))
    request = RequestFactory().post("/api/v1/ingest/batches")
    response = middleware.process_exception(request, OperationalError("the database system is shutting down"))
    assert response.status_code == 503
    assert response["Retry-After"] == str(outage.RETRY_AFTER_S)
    assert orjson.loads(response.content)["errors"][0]["field"] == "(database)"


def test_a_bug_is_left_to_be_a_500():
    middleware = outage.ServiceUnavailableMiddleware(lambda request: HttpResponse("unused"))
    assert middleware.process_exception(RequestFactory().get("/"), ValueError("a bug")) is None


@pytest.fixture
def redis_unreachable(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    ratelimit._client = None
    yield
    ratelimit._client = None


def test_the_rate_limiter_lets_uploads_through_with_one_warning_while_redis_is_unreachable(
        redis_unreachable, caplog):
    ratelimit._last_warning.clear()
    with caplog.at_level(logging.WARNING):
        assert ratelimit.hit("ingest", 1, limit=1) is None
        assert ratelimit.hit("ingest", 1, limit=1) is None  # over the limit, yet let through
    warnings = [r for r in caplog.records if "failing open" in r.getMessage()]
    assert len(warnings) == 1


def test_a_redis_connection_whose_buffer_was_closed_fails_open_and_is_dropped(monkeypatch, caplog):
    """redis-py raises ValueError("I/O operation on closed file") on a connection whose
    read timed out (seen under load in CI as a 500 on an upload); the limiter fails open
    and drops the pool's idle connections (never those other threads are using), and any
    other ValueError stays a bug."""
    dropped = []

    class Pipe:
        def __init__(self, message):
            self.message = message

        def incr(self, name):
            pass

        def expire(self, name, seconds):
            pass

        def execute(self):
            raise ValueError(self.message)

    class Client:
        message = "I/O operation on closed file."

        class connection_pool:  # noqa: N801
            @staticmethod
            def disconnect(inuse_connections=True):
                dropped.append(inuse_connections)

        def pipeline(self, transaction):
            return Pipe(self.message)

    fake = Client()
    monkeypatch.setattr(ratelimit, "_client", fake)
    ratelimit._last_warning.clear()
    with caplog.at_level(logging.WARNING):
        assert ratelimit.hit("ingest", 1, limit=1) is None
    assert dropped == [False]
    assert any("failing open" in r.getMessage() for r in caplog.records)
    fake.message = "a bug"
    with pytest.raises(ValueError, match="a bug"):
        ratelimit.hit("ingest", 1, limit=1)


@pytest.mark.django_db
def test_an_upload_is_accepted_while_redis_is_unreachable(kafka_topics, patient_with_device, client,
                                                         redis_unreachable):
    _, token, _ = patient_with_device
    r = client.post("/api/v1/ingest/batches", content_type="application/json",
                    data=orjson.dumps({"batch_id": "no-redis", "samples": hr_samples(5, now_ms() - 3_600_000)}),
                    HTTP_AUTHORIZATION=f"Device {token}")
    assert r.status_code == 202, r.content


@pytest.mark.django_db
def test_an_upload_answers_503_with_retry_after_while_the_broker_is_unreachable(
        kafka_topics, patient_with_device, client, settings):
    from lib import kafka

    _, token, _ = patient_with_device
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{free_port()}"  # nothing listens there
    settings.KAFKA_ACK_TIMEOUT_S = 2.0
    kafka.reset_producer()
    try:
        r = client.post("/api/v1/ingest/batches", content_type="application/json",
                        data=orjson.dumps({"batch_id": "no-kafka", "samples": hr_samples(5, now_ms() - 3_600_000)}),
                        HTTP_AUTHORIZATION=f"Device {token}")
    finally:
        kafka.reset_producer()
    assert r.status_code == 503, r.content
    assert r["Retry-After"]
