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
    """How many messages a topic holds: the sum of its partitions' end offsets (the
    tests' topics are fresh and never compacted, and hold no transaction markers)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()
