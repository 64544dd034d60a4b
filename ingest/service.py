"""Accepting a validated batch: record it, produce it to samples.v1, wait for the ack.

The API and the importers both call ``accept``. It is idempotent by (patient,
batch_id): a batch already acknowledged answers "duplicate" and is not produced again;
a batch id reused for different content is refused; a batch whose earlier attempt
failed (or whose process died before recording the ack) is produced again, which is
harmless because the sink stores each batch once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection

from ingest.schema import Batch, BatchError, to_message
from lib import kafka, logs, metrics

log = logging.getLogger(__name__)


# The bookkeeping rows need no fsync of their own: the samples are durable in Kafka
# (acks=all) before the 202, a lost "pending" row is re-created by the sink, and a lost
# "accepted" mark only makes a client's retry produce again, which the sink skips.
# set_config(..., true) lasts to the end of the statement's own (autocommit) transaction,
# so each bookkeeping write is one round trip without a WAL flush of its own.
_RELAXED = "(SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"


class BrokerUnavailable(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Outcome:
    batch_id: str
    accepted: int
    duplicate: bool

    def as_json(self) -> dict:
        return {"batch_id": self.batch_id, "status": "accepted", "samples": self.accepted,
                "duplicate": self.duplicate}


def accept(batch: Batch) -> Outcome:
    """Record, produce and confirm one batch. Raises BatchError or BrokerUnavailable."""
    with connection.cursor() as cur:
        cur.execute(
            f"""INSERT INTO ingest_ingestbatch
                   (patient_id, device_id, batch_id, digest, n_samples, source, status, received_at)
               SELECT %s, %s, %s, %s, %s, %s, 'pending', now() FROM {_RELAXED}
               ON CONFLICT (patient_id, batch_id) DO NOTHING
               RETURNING id""",
            [batch.patient, batch.device, batch.batch_id, batch.digest, len(batch.samples),
             batch.source],
        )
        row = cur.fetchone()
        if row is None:
            cur.execute(
                "SELECT id, digest, status, n_samples FROM ingest_ingestbatch "
                "WHERE patient_id = %s AND batch_id = %s",
                [batch.patient, batch.batch_id],
            )
            ingest_id, digest, status, n = cur.fetchone()
            if digest != batch.digest:
                raise BatchError(
                    [{"field": "batch_id", "reason": "was already used for a batch with other content"}],
                    status=409,
                )
            if status == "accepted":
                metrics.INGEST_BATCHES.labels("duplicate").inc()
                return Outcome(batch.batch_id, n, duplicate=True)
        else:
            ingest_id = row[0]
    try:
        kafka.send_and_wait(
            settings.KAFKA_TOPIC_SAMPLES, kafka.patient_key(batch.patient), to_message(batch),
            headers=logs.kafka_headers(),  # the request and batch ids, followed into the sink and worker logs
        )
    except Exception as exc:
        log.warning("produce failed for ingest batch %s: %s", ingest_id, type(exc).__name__)
        with connection.cursor() as cur:
            cur.execute("UPDATE ingest_ingestbatch SET status = 'failed' WHERE id = %s "
                        "AND status = 'pending'", [ingest_id])
        metrics.INGEST_BATCHES.labels("broker_unavailable").inc()
        raise BrokerUnavailable("the broker did not acknowledge the batch; retry later") from exc
    try:
        with connection.cursor() as cur:
            cur.execute(
                f"UPDATE ingest_ingestbatch SET status = 'accepted', accepted_at = now() FROM {_RELAXED} "
                "WHERE id = %s",
                [ingest_id],
            )
    except DatabaseError as exc:
        # The samples are durable in Kafka: the upload is accepted. The row stays
        # "pending"; a retry produces again, which the sink skips.
        log.warning("ingest batch %s acknowledged but not marked accepted: %s", ingest_id,
                    type(exc).__name__)
    metrics.INGEST_BATCHES.labels("accepted").inc()
    metrics.INGEST_SAMPLES.inc(len(batch.samples))
    return Outcome(batch.batch_id, len(batch.samples), duplicate=False)
