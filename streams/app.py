"""The Faust app: topics, the per-patient state table, and the detector agent.

samples.v1 (key = patient id) --> agent ``detect`` --> alerts.v1 (key = patient id)
                                     |
                                     +--> table ``<app id>-state`` (changelog topic
                                          co-partitioned with samples.v1)

The agent is thin: it batches events (``take_events``), hands them to
``DetectorProcessor`` (pure Python + numpy) to judge, sends the alerts and waits for
the broker's ack, then has the new states encoded and writes them into the table. The table's store is
RocksDB (through rocksdict) in production and memory in tests; either way the
changelog topic is the source of truth, so a restarted or a new worker recovers the
state of the partitions it is given. Several workers in the same group share the
partitions (Faust's consumer group). Async code here never calls the Django ORM.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import faust
from django.conf import settings
from faust.types import TP

from lib import kafka as hs_kafka
from lib import metrics
from lib.consumer import header_id, uploads
from streams.faust_hooks import as_current_event, committed_offset, hold_back, rewind
from streams.offsets import OffsetLedger, Split
from streams.processor import DetectorProcessor, store_history
from streams.thresholds import ThresholdCache

log = logging.getLogger(__name__)


def broker_urls() -> str:
    return ";".join(f"kafka://{s}" for s in hs_kafka.bootstrap())


def create_app(*, thresholds: ThresholdCache | None = None) -> faust.App:
    """Build the app from Django settings (one per process)."""
    partitions = settings.KAFKA_PARTITIONS
    app = faust.App(
        settings.DETECTOR_APP_ID,
        broker=broker_urls(),
        store=settings.DETECTOR_STORE,
        datadir=str(Path(settings.DETECTOR_DATA_DIR)),
        topic_partitions=partitions,
        topic_replication_factor=settings.KAFKA_REPLICATION_FACTOR,
        broker_max_poll_interval=settings.DETECTOR_MAX_POLL_INTERVAL_S,
        broker_rebalance_timeout=settings.DETECTOR_REBALANCE_TIMEOUT_S,
        broker_session_timeout=settings.DETECTOR_SESSION_TIMEOUT_S,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # state blobs are ~6.5 KB: batch many per request instead of two
        producer_max_batch_size=1 << 20,
        producer_max_request_size=8 << 20,
        producer_linger_ms=5,
        web_enabled=False,
        # A rebalance or a stop waits for the batch in hand to finish (its alerts and
        # changelog records acked, its offsets committed) before the partitions go. With
        # False, a batch still running after its partitions were revoked wrote its older
        # state to the changelog after the new owner had moved on; when the partitions
        # came back, that stale state was restored and the samples between were skipped
        # (seen as alerts differing from a replay when a third worker joined and left).
        stream_wait_empty=True,
        stream_buffer_maxsize=max(4096, 2 * settings.DETECTOR_TAKE_MESSAGES),
        broker_max_poll_records=2000,
        table_standby_replicas=0,
        processing_guarantee=settings.DETECTOR_PROCESSING_GUARANTEE,
    )
    def raw() -> faust.Schema:
        return faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw",
                            value_serializer="raw")

    samples = app.topic(settings.KAFKA_TOPIC_SAMPLES, schema=raw(), partitions=partitions)
    alerts = app.topic(settings.KAFKA_TOPIC_ALERTS, schema=raw(), partitions=partitions)
    # bytes in, bytes out: Faust picks the "raw" codec from these types (and only from them)
    table = app.Table("state", default=None, key_type=bytes, value_type=bytes, partitions=partitions)
    thresholds = thresholds or ThresholdCache(settings.DETECTOR_THRESHOLDS_REFRESH_S)
    processor = DetectorProcessor(lateness_s=settings.DETECTOR_LATENESS_S,
                                  overrides=thresholds.overrides, tz_offset=thresholds.tz_offset,
                                  history=store_history)
    app.detector_processor = processor  # type: ignore[attr-defined]
    app.detector_thresholds = thresholds  # type: ignore[attr-defined]

    ledger = OffsetLedger()
    app.detector_ledger = ledger  # type: ignore[attr-defined]

    @app.agent(samples)
    async def detect(stream):
        async for taken in stream.take_events(settings.DETECTOR_TAKE_MESSAGES,
                                              within=settings.DETECTOR_TAKE_WITHIN_S):
            events, split = await continuous(taken)
            try:
                await judge(events)
            except BaseException:
                hold_back(events)  # not judged to the end: read again, never committed
                raise
            ledger.commit(split)

    async def continuous(events: list[faust.EventT]) -> tuple[list[faust.EventT], Split]:
        """The take's events up to the first hole in each partition (streams/offsets.py);
        the rest are held back, and the partition is read again from the hole."""
        for e in events:
            tp = e.message.tp
            if tp.partition not in ledger.next:
                ledger.begin(tp.partition, committed_offset(app.consumer, tp))
        split = ledger.split([(e.message.partition, e.message.offset) for e in events])
        for p, (since, until) in split.passed_over.items():
            log.warning("samples[%d]: offsets %d..%d still not delivered after %d re-reads "
                        "(no longer in the log?): passed over", p, since, until - 1, ledger.max_rewinds)
        if not split.holes:
            return events, split
        hold_back([e for e, ok in zip(events, split.judge, strict=True) if not ok])
        await read_holes_again()
        return [e for e, ok in zip(events, split.judge, strict=True) if ok], split

    async def read_holes_again() -> None:
        """Seek the partitions with a hole back to it (again, while it stays open)."""
        for p, offset in ledger.due():
            log.warning("samples[%d]: offset %d was not delivered; reading the partition "
                        "again from it", p, offset)
            metrics.DETECTOR_REWINDS.inc()
            try:
                await rewind(app.consumer, TP(samples.get_topic_name(), p), offset)
            except Exception as exc:  # noqa: BLE001 - revoked meanwhile: its new owner starts from the commit
                log.warning("samples[%d]: not read again (%s)", p, type(exc).__name__)

    @app.timer(interval=1.0)
    async def _holes() -> None:
        if ledger.holes:
            await read_holes_again()

    async def judge(events: list[faust.EventT]) -> None:
        if not events:
            return
        started, judged = time.perf_counter(), processor.stats.samples
        batch = [(e.message.key or b"", e.message.offset, e.message.value) for e in events]
        # The whole take is judged before the first await: a rebalance that starts during
        # an await removes the revoked partitions' stores, and a state read after that
        # would come back empty (judging a take in parts, with the alerts of each part sent
        # between them, lost a patient's illness alert that way in the scale fault test).
        # The store itself: the table's own lookup asks RocksDB twice (``in``, then the value).
        out = processor.judge(batch, table.data.get)
        # force=True: send now, never as an attachment of the (unset) current event
        pending = [await alerts.send(key=a.key(), value=a.dumps(), force=True)
                   for a in out.alerts if not thresholds.suppressed(a)]
        for fut in pending:
            await fut  # the alerts are acked by the broker before the state moves on
        # the states are encoded only now: the alerts did not wait for it
        await write_states(processor.dump(out).states, {e.message.key or b"": e for e in events})
        if uploads.isEnabledFor(logging.INFO):
            for e in events:
                ids = dict(e.message.headers or ())
                uploads.info("detectors judged batch %s (request %s) from %s[%d]@%d",
                             header_id(ids.get("batch_id")), header_id(ids.get("request_id")),
                             e.message.topic, e.message.partition, e.message.offset)
        metrics.DETECTOR_MESSAGES.inc(len(batch))
        metrics.DETECTOR_SAMPLES.inc(processor.stats.samples - judged)
        metrics.DETECTOR_ALERTS.inc(len(pending))
        metrics.DETECTOR_BATCH_SECONDS.observe(time.perf_counter() - started)

    async def write_states(states: dict[bytes, bytes], last_event: dict[bytes, faust.EventT]) -> None:
        """Write each patient's state to the store and the changelog, acked.

        ``table[key] = blob`` would queue the changelog record with ``send_soon``, and
        Faust's pre-commit flush gives up on its queue after 0.1 s, so under load the
        source offsets of a batch could be committed before its state reached the
        broker. Here every changelog record is acknowledged (acks=all) before the
        batch's events are acked, so a committed offset always has its state in the
        changelog. Each record goes to the partition of the patient's samples
        (co-partitioning); the store's persisted offset is kept as Faust keeps it, for
        RocksDB recovery.
        """
        pending = []
        direct = not app.in_transaction  # exactly_once: Faust's path picks the transaction
        topic = table.changelog_topic.get_topic_name()
        for key, blob in states.items():
            event = last_event[key]
            # The RocksDB store picks the partition's database from the task's current
            # event, which a take leaves unset: point it at this key's own event.
            with as_current_event(event):
                table.data[key] = blob
            if direct:
                # the producer itself: Faust's Topic.send adds ~0.3 ms of bookkeeping a
                # record, paid once per patient in every batch
                fut = await app.producer.send(topic, key, blob, event.message.partition, None, None)
                fut.add_done_callback(persisted_direct)
                pending.append(fut)
            else:
                pending.append(await send_changelog(key, blob, event.message.partition))
        for fut in pending:
            await fut

    async def send_changelog(key: bytes, value: bytes, partition: int):
        return await table.changelog_topic.send(
            key=key, value=value, partition=partition, key_serializer="raw",
            value_serializer="raw", callback=persisted, force=True)

    def persisted_direct(fut) -> None:
        if not fut.cancelled() and fut.exception() is None:
            meta = fut.result()
            table.data.set_persisted_offset(meta.topic_partition, meta.offset)

    def persisted(fut) -> None:
        meta = fut.result()
        if app.in_transaction:  # exactly_once: the offset is the store's once its transaction commits
            app.tables.persist_offset_on_commit(table.data, meta.topic_partition, meta.offset)
        else:
            table.data.set_persisted_offset(meta.topic_partition, meta.offset)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender, revoked, **kwargs):  # noqa: ARG001
        processor.forget()  # another worker may own (and change) these patients now
        ledger.forget()  # the partitions start again from their committed offsets

    @app.task
    async def _start_thresholds():
        thresholds.start()

    return app
