"""The Kafka-to-database sink: samples.v1 -> ``samples`` and its rollups.

It runs on the one consumer loop (lib/consumer.py: batching, dead letters to
``samples.v1.dlq``, commits after the write, retries and shutdown) and supplies:

* parse: each samples.v1 message is read back with the schema module; one that cannot
  be read is unusable (dead-lettered with the reason).
* write: one transaction marks the batches stored in ``ingest_ingestbatch`` (only
  those not stored before: a re-delivered or re-sent batch adds no rows), COPYs their
  samples, and, on plain PostgreSQL, folds them into the rollups. An unreachable
  database is waited out; a batch the database refuses (a DataError) is dead-lettered.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import psycopg
from django.conf import settings

from ingest import storage
from ingest.schema import Batch, BatchError, parse_message
from lib import db
from lib.consumer import ConsumerLoop, LoopStats, Unusable

log = logging.getLogger(__name__)

GROUP_ID = "ingest-sink"


@dataclass
class SinkStats(LoopStats):
    stored_batches: int = 0
    duplicate_batches: int = 0
    samples: int = 0


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


class Sink(ConsumerLoop[Batch]):
    transient_errors = (psycopg.OperationalError, psycopg.InterfaceError)
    refused_errors = (psycopg.DataError, psycopg.IntegrityError)

    def __init__(self, *, group_id: str = GROUP_ID, batch_messages: int | None = None,
                 batch_seconds: float | None = None):
        super().__init__(
            topic=settings.KAFKA_TOPIC_SAMPLES, group_id=group_id,
            batch_messages=batch_messages or settings.SINK_BATCH_MESSAGES,
            batch_seconds=settings.SINK_BATCH_SECONDS if batch_seconds is None else batch_seconds,
            stats=SinkStats())
        self.stats: SinkStats
        self.partitions = storage.PartitionKeeper()
        self.conn: psycopg.Connection | None = None
        self.dialect = "postgres"

    def _connect(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = db.connect(autocommit=False)
            with self.conn.cursor() as cur:
                self.dialect = storage.installed_dialect(cur)
            self.conn.commit()
        return self.conn

    def reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    close = reset

    def parse(self, value: bytes) -> Batch:
        try:
            return parse_message(value)
        except BatchError as exc:
            raise Unusable(str(exc)) from exc

    def write(self, batches: list[Batch]) -> dict[int, str]:
        self._write(batches)
        return {}

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
