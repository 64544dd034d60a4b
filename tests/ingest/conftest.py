from __future__ import annotations

import itertools
import time

import pytest
from django.contrib.auth import get_user_model

from care.models import Device, Patient

_counter = itertools.count()


@pytest.fixture
def patient_with_device(db):
    """A patient with a login and a device; yields (patient, raw device token, user)."""
    n = next(_counter)
    user = get_user_model().objects.create_user(f"p{n}-{time.time_ns()}", password="pw-123456789")
    patient = Patient.objects.create(user=user, display_name=f"Test patient {n}")
    _, token = Device.issue(patient, "test watch")
    return patient, token, user


def hr_samples(n: int, start_ms: int, step_ms: int = 60_000, value: float = 60.0) -> list[dict]:
    return [{"metric": "heart_rate", "time": start_ms + i * step_ms, "value": value + (i % 7)} for i in range(n)]


def topic_count(bootstrap: str, topic: str) -> int:
    """How many messages a topic holds, read and counted (the tests' topics are fresh).

    Read, not summed end offsets: the development broker reports a partition's end
    offset as the first offset of its last record batch + 1.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=1500)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        consumer.seek_to_beginning()
        return sum(1 for _ in consumer)
    finally:
        consumer.close()
