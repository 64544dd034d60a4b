"""The one chokepoint to the Kafka broker: topics, the producer, consumers.

Every producer is idempotent with acks=all; every consumer commits by hand (the sinks'
loop is lib/consumer.py). Apache
Kafka everywhere: production, ``make run`` and the tests (see docs/platform.md).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)

# kafka-python 3.0 backs off reconnecting up to 30 s; after a broker restart that left
# uploads refused for up to 30 s more. 1 s is the Java client's default.
RECONNECT_BACKOFF_MAX_MS = 1000

_producer: KafkaProducer | None = None
_producer_lock = threading.Lock()


def bootstrap() -> list[str]:
    return [s.strip() for s in settings.KAFKA_BOOTSTRAP_SERVERS.split(",") if s.strip()]


def patient_topics() -> list[str]:
    """Topics keyed by patient id: they must all have the same partition count."""
    return [settings.KAFKA_TOPIC_SAMPLES, settings.KAFKA_TOPIC_ALERTS]


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of a source topic: ``<topic>.dlq``, the one rule for every sink."""
    return f"{topic}.dlq"


def ack_timeout_s() -> float:
    return float(settings.KAFKA_ACK_TIMEOUT_S)


def ensure_topics(extra: list[str] | None = None, compacted: list[str] | None = None) -> None:
    """Create the project's topics if missing (co-partitioned by patient id), with the
    dead-letter topic of each; ``compacted`` ones (a changelog) keep the latest record
    per key."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap(), client_id="healthstream-admin")
    try:
        existing = set(admin.list_topics())
        compact = set(compacted or [])
        wanted = list(dict.fromkeys([*patient_topics(), *map(dead_letter_topic, patient_topics()),
                                     *(extra or []), *compact]))
        new = [
            NewTopic(name, settings.KAFKA_PARTITIONS, settings.KAFKA_REPLICATION_FACTOR,
                     topic_configs={"cleanup.policy": "compact"} if name in compact else {})
            for name in wanted
            if name not in existing
        ]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        _wait_for_leaders(admin, wanted)
        partitions = {
            t.get("name", t.get("topic")): len(t["partitions"])
            for t in admin.describe_topics(patient_topics())
            if t.get("partitions")
        }
        counts = set(partitions.values())
        if len(counts) > 1:
            raise RuntimeError(
                f"patient-keyed topics must be co-partitioned; partition counts are {partitions}"
            )
    finally:
        admin.close()


def _wait_for_leaders(admin: KafkaAdminClient, topics: list[str], timeout_s: float = 30.0) -> None:
    """Return once every partition of the topics has a leader: a topic just created has
    none for a moment, and a send in that moment is retried and may be dropped."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = admin.describe_topics(topics)
        leaderless = sorted(
            t.get("name", t.get("topic"))
            for t in described
            if t.get("error_code") or not t.get("partitions")
            or any(p.get("leader_id", p.get("leader", -1)) < 0 for p in t["partitions"])
        )
        if not leaderless and len(described) >= len(set(topics)):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics without a partition leader after {timeout_s:.0f} s: {leaderless}")
        time.sleep(0.2)


def producer() -> KafkaProducer:
    """The process-wide producer (thread-safe; batches concurrent sends together)."""
    global _producer
    with _producer_lock:
        if _producer is None:
            _producer = KafkaProducer(
                bootstrap_servers=bootstrap(),
                client_id="healthstream",
                acks="all",
                enable_idempotence=True,
                compression_type="lz4",
                linger_ms=2,
                max_request_size=8 * 1024 * 1024,
                retries=5,
                # send() may wait this long for metadata (a broker that is down): no longer
                # than the ack itself, so an upload answers 503 in bounded time
                max_block_ms=int(settings.KAFKA_ACK_TIMEOUT_S * 1000),
                reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            )
        return _producer


def reset_producer() -> None:
    """Close the producer (after a fork, or at shutdown)."""
    global _producer
    with _producer_lock:
        if _producer is not None:
            _producer.close(timeout=5)
            _producer = None


def patient_key(patient_id: int) -> bytes:
    return str(patient_id).encode()


def send_and_wait(topic: str, key: bytes, value: bytes, timeout: float | None = None,
                  headers: list[tuple[str, bytes]] | None = None):
    """Produce one message and wait until the broker acknowledged it (acks=all)."""
    future = producer().send(topic, key=key, value=value, headers=headers or None)
    return future.get(timeout=timeout or settings.KAFKA_ACK_TIMEOUT_S)


def consumer(group_id: str, topics: list[str], **overrides) -> KafkaConsumer:
    """A group consumer that never auto-commits."""
    options = dict(
        bootstrap_servers=bootstrap(),
        group_id=group_id,
        client_id=f"healthstream-{group_id}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=settings.KAFKA_MAX_POLL_INTERVAL_MS,
        max_poll_records=500,
        fetch_max_bytes=32 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        # a group that joined before it saw a topic's partitions is assigned nothing until
        # the next metadata refresh: 30 s, not the client's default 5 minutes
        metadata_max_age_ms=30_000,
    )
    if settings.DETECTOR_PROCESSING_GUARANTEE == "exactly_once":
        # records of an aborted transaction (a worker that died mid-transaction) are never read
        options["isolation_level"] = "read_committed"
    options.update(overrides)
    c = KafkaConsumer(**options)
    _await_partitions(c, topics)
    c.subscribe(topics)
    return c


def _await_partitions(c: KafkaConsumer, topics: list[str], timeout_s: float = 30.0) -> None:
    """Fetch the topics' partitions before joining the group, so that the first
    assignment covers them (a topic created a moment ago may not be in the metadata yet).
    A topic still missing after ``timeout_s`` is left to the metadata refresh."""
    deadline = time.monotonic() + timeout_s
    missing = list(topics)
    while missing and time.monotonic() < deadline:
        missing = [t for t in missing if not c.partitions_for_topic(t)]
        if missing:
            time.sleep(0.2)
    if missing:
        log.warning("no partitions known yet for %s; joining anyway", missing)


def ping(timeout_s: float = 2.0) -> bool:
    """True when the broker answers a metadata request."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap(), request_timeout_ms=int(timeout_s * 1000),
            client_id="healthstream-health",
        )
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
    try:
        admin.list_topics()
        return True
    except Exception:  # noqa: BLE001
        return False
    finally:
        admin.close()
