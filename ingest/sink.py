"""The Kafka-to-database sink: parse -> batch (size or time) -> write -> commit.

* parse: each samples.v1 message is read back with the schema module; one that cannot
  be read goes to the dead-letter topic with the reason (never dropped, never fatal).
* batch: messages are buffered until ``SINK_BATCH_MESSAGES`` or ``SINK_BATCH_SECONDS``.
* write: one transaction marks the batches stored in ``ingest_ingestbatch`` (only
  those not stored before: a re-delivered batch adds no rows), COPYs their samples,
  and, on plain PostgreSQL, folds them into the rollups.
* commit: offsets (+1) are committed only after the database commit, at most about
  once a second and on shutdown. The loop is synchronous, so a slow database stops
  polling (back-pressure) instead of buffering without bound.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import psycopg
from django.conf import settings
from kafka import TopicPartition

from ingest import storage
from ingest.schema import Batch, BatchError, parse_message
from lib import db, kafka

log = logging.getLogger(__name__)

GROUP_ID = "ingest-sink"


@dataclass
class SinkStats:
    messages: int = 0
    stored_batches: int = 0
    duplicate_batches: int = 0
    samples: int = 0
    dead_letters: int = 0
    flushes: int = 0


_MARK_STORED = """
INSERT INTO ingest_ingestbatch AS b
    (patient_id, device_id, batch_id, digest, n_samples, source, status, received_at, accepted_at, stored_at)
SELECT p, d, bid, dg, n, src, 'accepted', to_timestamp(r / 1000.0), to_timestamp(r / 1000.0), clock_timestamp()
FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::int[], %s::text[], %s::bigint[])
     AS u(p, d, bid, dg, n, src, r)
ON CONFLICT (patient_id, batch_id) DO UPDATE SET stored_at = clock_timestamp()
WHERE b.stored_at IS NULL
RETURNING patient_id, batch_id
"""


@dataclass
class _Pending:
    batches: list[tuple[TopicPartition, int, Batch]] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    first_at: float = 0.0


class Sink(kafka.CommittingConsumer):
    def __init__(self, *, group_id: str = GROUP_ID, batch_messages: int | None = None,
                 batch_seconds: float | None = None):
        self.group_id = group_id
        self.batch_messages = batch_messages or settings.SINK_BATCH_MESSAGES
        self.batch_seconds = batch_seconds if batch_seconds is not None else settings.SINK_BATCH_SECONDS
        self.stats = SinkStats()
        self.stopping = False
        self.partitions = storage.PartitionKeeper()
        self.conn: psycopg.Connection | None = None
        self.dialect = "postgres"
        self.pending = _Pending()
        self._init_commits()

    # -- lifecycle ---------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = db.connect(autocommit=False)
            with self.conn.cursor() as cur:
                self.dialect = storage.installed_dialect(cur)
            self.conn.commit()
        return self.conn

    def run(self, *, max_seconds: float | None = None) -> SinkStats:
        kafka.ensure_topics()
        consumer = kafka.consumer(self.group_id, [settings.KAFKA_TOPIC_SAMPLES])
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        log.info("sink started (group %s, dialect pending connect)", self.group_id)
        try:
            self._connect()
            log.info("sink writing to %s storage", self.dialect)
            last_report = time.monotonic()
            while not self.stopping and (deadline is None or time.monotonic() < deadline):
                records = consumer.poll(timeout_ms=100, max_records=self.batch_messages)
                for tp, messages in records.items():
                    for message in messages:
                        self._take(tp, message)
                self._maybe_flush()
                self._maybe_commit(consumer)
                if time.monotonic() - last_report > 30:
                    last_report = time.monotonic()
                    log.info("sink: %d messages, %d batches stored, %d duplicate, %d samples, %d dead letters",
                             self.stats.messages, self.stats.stored_batches,
                             self.stats.duplicate_batches, self.stats.samples, self.stats.dead_letters)
            self._flush()
            self._maybe_commit(consumer, force=True)
        finally:
            consumer.close(autocommit=False)
            if self.conn is not None:
                self.conn.close()
        return self.stats

    # -- steps ---------------------------------------------------------------
    def _take(self, tp: TopicPartition, message) -> None:
        self.stats.messages += 1
        try:
            batch = parse_message(message.value)
        except BatchError as exc:
            self._dead_letter(tp, message, str(exc))
            self._done(tp, message.offset)
            return
        if not self.pending.batches:
            self.pending.first_at = time.monotonic()
        self.pending.batches.append((tp, message.offset, batch))

    def _done(self, tp: TopicPartition, offset: int) -> None:
        if not self.pending.batches:
            self.committable[tp] = max(self.committable.get(tp, 0), offset + 1)
        else:
            self.pending.offsets[tp] = max(self.pending.offsets.get(tp, 0), offset + 1)

    def _dead_letter(self, tp: TopicPartition, message, reason: str) -> None:
        self.send_dead_letter(settings.KAFKA_TOPIC_DLQ, tp, message, reason)

    def _maybe_flush(self) -> None:
        if not self.pending.batches:
            return
        if (len(self.pending.batches) >= self.batch_messages
                or time.monotonic() - self.pending.first_at >= self.batch_seconds):
            self._flush()

    def _flush(self) -> None:
        pending, self.pending = self.pending, _Pending()
        if pending.batches:
            batches = [b for _, _, b in pending.batches]
            delay = 0.5
            while True:
                try:
                    self._write(batches)
                    break
                except (psycopg.DataError, psycopg.IntegrityError) as exc:
                    self._write_one_by_one(pending, exc)
                    break
                except psycopg.OperationalError as exc:
                    log.warning("database unavailable (%s); retrying in %.1fs", type(exc).__name__, delay)
                    if self.conn is not None:
                        self.conn.close()
                    time.sleep(delay)
                    delay = min(delay * 2, 10)
                    if self.stopping and delay >= 10:
                        raise
            for tp, offset, _ in pending.batches:
                self.committable[tp] = max(self.committable.get(tp, 0), offset + 1)
        for tp, offset in pending.offsets.items():
            self.committable[tp] = max(self.committable.get(tp, 0), offset)
        self.stats.flushes += 1

    def _write_one_by_one(self, pending: _Pending, first_error: Exception) -> None:
        log.warning("a flush failed (%s); writing its batches one by one", type(first_error).__name__)
        for tp, _offset, batch in pending.batches:
            try:
                self._write([batch])
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                self._dead_letter(tp, _Raw(batch), f"database refused the batch: {type(exc).__name__}")

    def _write(self, batches: list[Batch]) -> None:
        conn = self._connect()
        received = len(batches)
        unique: dict[tuple[int, str], Batch] = {}
        for b in batches:
            unique.setdefault((b.patient, b.batch_id), b)
        batches = list(unique.values())
        try:
            if self.dialect == "postgres":
                lo = min(min(s["time"] for s in b.samples) for b in batches)
                hi = max(max(s["time"] for s in b.samples) for b in batches)
                self.partitions.ensure(conn, lo, hi)
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(
                    _MARK_STORED,
                    ([b.patient for b in batches], [b.device for b in batches],
                     [b.batch_id for b in batches], [b.digest for b in batches],
                     [len(b.samples) for b in batches], [b.source for b in batches],
                     [b.received_ms or int(time.time() * 1000) for b in batches]),
                )
                fresh = set(cur.fetchall())
                new = [b for b in batches if (b.patient, b.batch_id) in fresh]
                if new:
                    cols = storage.columns_from_batches(new)
                    storage.copy_samples(cur, cols)
                    if self.dialect == "postgres":
                        storage.update_rollups(cur, cols)
                    else:
                        storage.queue_timescale_refresh(cur, int(cols.time_ms.min()), int(cols.time_ms.max()))
                    self.stats.samples += len(cols)
            self.stats.stored_batches += len(new)
            self.stats.duplicate_batches += received - len(new)
        except Exception:
            if not conn.closed:
                conn.rollback()
            raise


class _Raw:
    """The shape of a Kafka message, for dead-lettering a batch the database refused."""

    def __init__(self, batch: Batch):
        from ingest.schema import to_message

        self.key = kafka.patient_key(batch.patient)
        self.value = to_message(batch)
        self.offset = -1
