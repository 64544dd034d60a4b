"""The sink, in process, against the real broker and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from django.db import connection

from ingest import service, storage
from ingest.schema import now_ms, to_message, validate_upload
from ingest.sink import Sink
from lib import kafka
from tests.ingest.conftest import hr_samples

pytestmark = pytest.mark.django_db(transaction=True)


def accept(patient_id: int, batch_id: str, samples: list[dict]):
    batch = validate_upload({"batch_id": batch_id, "samples": samples}, patient=patient_id, device=None,
                            max_samples=5000)
    service.accept(batch)
    return batch


def run_sink(until=None, timeout: float = 90.0) -> Sink:
    """Run the sink in a thread until ``until()`` holds (then one more second), or timeout."""
    sink = Sink(group_id=f"test-sink-{time.time_ns()}", batch_seconds=0.2)
    thread = threading.Thread(target=sink.run, kwargs={"max_seconds": timeout})
    thread.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and thread.is_alive():
        if until is not None and until():
            time.sleep(1.0)
            break
        time.sleep(0.2)
    sink.stopping = True
    thread.join(15)
    return sink


def stored(patient_id: int) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM samples WHERE patient_id = %s", [patient_id])
        return cur.fetchone()[0]


def test_it_stores_every_sample_of_every_batch_once(kafka_topics, patient_with_device):
    patient, _, _ = patient_with_device
    start = now_ms() - 40 * 86_400_000  # spans two monthly partitions
    for i in range(6):
        accept(patient.pk, f"s{i}", hr_samples(500, start + i * 500 * 60_000))
    sink = run_sink(lambda: stored(patient.pk) >= 3000)
    assert stored(patient.pk) == 3000
    assert sink.stats.stored_batches == 6 and sink.stats.duplicate_batches == 0


def test_a_redelivered_batch_adds_no_rows(kafka_topics, patient_with_device):
    patient, _, _ = patient_with_device
    batch = accept(patient.pk, "once", hr_samples(50, now_ms() - 3_600_000))
    # The same message again, as a broker re-delivers after a consumer crash.
    kafka.send_and_wait(kafka_topics["samples"], kafka.patient_key(patient.pk), to_message(batch))
    sink = run_sink(lambda: stored(patient.pk) >= 50)
    assert stored(patient.pk) == 50
    assert sink.stats.duplicate_batches == 1


def test_a_message_it_cannot_read_goes_to_the_dead_letter_topic_and_the_rest_is_stored(kafka_topics, patient_with_device):
    from kafka import KafkaConsumer

    patient, _, _ = patient_with_device
    kafka.send_and_wait(kafka_topics["samples"], b"1", b"this is not json")
    accept(patient.pk, "good", hr_samples(5, now_ms() - 3_600_000))
    sink = run_sink(lambda: stored(patient.pk) >= 5)
    assert stored(patient.pk) == 5
    assert sink.stats.dead_letters == 1
    consumer = KafkaConsumer(kafka_topics["dlq"], bootstrap_servers=kafka_topics["bootstrap"],
                             auto_offset_reset="earliest")
    letters = []
    deadline = time.monotonic() + 30
    while not letters and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            letters.extend(records)
    consumer.close()
    assert len(letters) == 1
    assert letters[0].value == b"this is not json"
    assert b"not JSON" in dict(letters[0].headers)["reason"]


def test_incremental_rollups_equal_rollups_recomputed_from_raw_rows(kafka_topics, patient_with_device):
    patient, _, _ = patient_with_device
    rng = np.random.default_rng(3)
    start = now_ms() - 3 * 86_400_000
    samples = []
    for i in range(8):
        t0 = start + i * 9 * 3_600_000
        samples = [{"metric": "heart_rate", "time": t0 + int(k) * 7_000, "value": float(v)}
                   for k, v in zip(range(400), rng.integers(45, 150, 400), strict=True)]
        samples += [{"metric": "steps", "time": t0 + k * 60_000, "end": t0 + (k + 1) * 60_000, "value": float(k % 50)}
                    for k in range(60)]
        samples += [{"metric": "sleep_stage", "time": t0 + k * 1_200_000, "end": t0 + (k + 1) * 1_200_000,
                     "stage": ["light", "deep", "rem"][k % 3]} for k in range(6)]
        accept(patient.pk, f"r{i}", samples)
    run_sink(lambda: stored(patient.pk) >= 8 * 466)

    def snapshot():
        with connection.cursor() as cur:
            out = {}
            for name in ("samples_1m", "samples_1h", "samples_1d"):
                cur.execute(f"SELECT metric, bucket, n, round(total::numeric, 6), vmin, vmax FROM {name} "
                            "WHERE patient_id = %s ORDER BY 1, 2", [patient.pk])
                out[name] = cur.fetchall()
            cur.execute("SELECT bucket, stage, round(minutes::numeric, 6) FROM sleep_nightly "
                        "WHERE patient_id = %s ORDER BY 1, 2", [patient.pk])
            out["sleep"] = cur.fetchall()
            return out

    incremental = snapshot()
    assert len(incremental["samples_1m"]) > 100 and incremental["sleep"]
    with connection.cursor() as cur:
        storage.rebuild_rollups(cur, patient.pk,
                                datetime.fromtimestamp(start / 1000 - 86_400, UTC),
                                datetime.fromtimestamp(now_ms() / 1000 + 86_400, UTC))
    assert snapshot() == incremental
