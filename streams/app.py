"""The Faust app: topics, the per-patient state table, and the detector agent.

samples.v1 (key = patient id) --> agent ``detect`` --> alerts.v1 (key = patient id)
                                     |
                                     +--> table ``<app id>-state`` (changelog topic
                                          co-partitioned with samples.v1)

The agent is thin: it gathers events into batches (``Batcher``), hands them to
``DetectorProcessor`` (pure Python + numpy), sends the alerts and waits for the
broker's ack; every ``DETECTOR_CHECKPOINT_S`` it writes the changed states into the
table (acked) and only then acks the events, so their offsets can be committed. The table's store is
RocksDB (through rocksdict) in production and memory in tests; either way the
changelog topic is the source of truth, so a restarted or a new worker recovers the
state of the partitions it is given. Several workers in the same group share the
partitions (Faust's consumer group). Async code here never calls the Django ORM.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from pathlib import Path

import faust
from django.conf import settings
from faust.streams import _current_event

from ingest import kafka as hs_kafka
from streams.processor import DetectorProcessor
from streams.thresholds import ThresholdCache

log = logging.getLogger(__name__)


#: The changelog record that closes each batch of state writes (see ``write_states``);
#: never a patient's key (those are decimal ids).
END_MARKER = b"~end-of-batch"
#: Faust hands the agent chunks of at most this many messages, or what came in this
#: long; the ``Batcher`` makes detector batches of them.
CHUNK_MESSAGES = 1000
CHUNK_WITHIN_S = 0.1
#: The worker logs its running counts this often (ids and counts only, never values).
STATS_EVERY_S = 30.0


class Batcher:
    """When to run the detectors over what came in, and when to checkpoint.

    Live, a batch runs once its oldest message has waited ``within_s`` (the added alert
    latency), or when it holds ``max_messages``. Behind (the newest message came more
    than ``behind_s`` after the broker stamped it: a backlog), it gathers for up to
    ``backlog_wait_s``, since the detectors' cost is mostly per patient and per batch:
    bigger batches catch up faster, and the added wait is small against the lag. Processed
    messages are held, not acked, until a checkpoint (every ``checkpoint_s``) has
    written the states they changed.
    """

    def __init__(self, max_messages: int, within_s: float, backlog_wait_s: float,
                 checkpoint_s: float) -> None:
        self.max_messages, self.within_s = max_messages, within_s
        self.backlog_wait_s, self.checkpoint_s = backlog_wait_s, checkpoint_s
        self.behind_s = max(1.0, 2 * within_s)
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        """Forget everything not checkpointed (a rebalance)."""
        self.generation += 1
        self.waiting: list = []  # events not yet processed
        self.first_at = 0.0  # when the oldest of them came
        self.behind = False
        self.held: list = []  # processed, not yet acked
        self.changed: dict[bytes, object] = {}  # key -> its last processed event
        self.checkpoint_at = time.monotonic()

    def add(self, events, now: float | None = None) -> None:
        """Events that came in; ``now`` (epoch seconds) against their broker timestamps."""
        if not events:
            return
        if not self.waiting:
            self.first_at = time.monotonic()
        self.waiting.extend(events)
        lag = (time.time() if now is None else now) - (events[-1].message.timestamp or 0)
        self.behind = lag > self.behind_s

    def batch_due(self, now: float) -> bool:
        if not self.waiting:
            return False
        wait = self.backlog_wait_s if self.behind else self.within_s
        return len(self.waiting) >= self.max_messages or now - self.first_at >= wait

    def take_batch(self) -> list:
        events, self.waiting = self.waiting, []
        return events

    def processed(self, events, changed: set[bytes]) -> None:
        self.held.extend(events)
        for e in events:
            key = e.message.key or b""
            if key in changed:
                self.changed[key] = e

    def checkpoint_due(self, now: float) -> bool:
        return bool(self.held) and now - self.checkpoint_at >= self.checkpoint_s

    def take_checkpoint(self) -> tuple[int, list, dict]:
        held, changed = self.held, self.changed
        self.held, self.changed = [], {}
        self.checkpoint_at = time.monotonic()
        return self.generation, held, changed


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
        stream_wait_empty=False,
        stream_buffer_maxsize=max(4096, 2 * settings.DETECTOR_TAKE_MESSAGES),
        broker_max_poll_records=2000,
        table_standby_replicas=0,
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
                                  overrides=thresholds.overrides, tz_offset=thresholds.tz_offset)
    app.detector_processor = processor  # type: ignore[attr-defined]
    app.detector_thresholds = thresholds  # type: ignore[attr-defined]

    work = Batcher(settings.DETECTOR_TAKE_MESSAGES, settings.DETECTOR_TAKE_WITHIN_S,
                   settings.DETECTOR_BACKLOG_WAIT_S, settings.DETECTOR_CHECKPOINT_S)
    app.detector_batcher = work  # type: ignore[attr-defined]
    lock = asyncio.Lock()
    stream_ref: list = []

    @app.agent(samples)
    async def detect(stream):
        stream_ref[:] = [stream]
        async for chunk in stream.noack_take(CHUNK_MESSAGES, within=CHUNK_WITHIN_S):
            async with lock:
                work.add(chunk)
                await step()

    @app.task
    async def _tick():
        # A quiet stream yields no chunk: this runs what is due all the same. (A loop,
        # not app.timer: a batch may well run longer than the tick.)
        while not app.should_stop:
            await asyncio.sleep(CHUNK_WITHIN_S)
            async with lock:
                await step()

    @app.timer(STATS_EVERY_S)
    async def _progress():
        st = processor.stats
        if st.batches:
            log.info("detectors: %d messages, %d samples in %d batches (%.0f messages each), "
                     "%d alerts, %d checkpoints (%d states), %d re-delivered skipped, "
                     "%d unreadable", st.messages, st.samples, st.batches,
                     st.messages / st.batches, st.alerts, st.checkpoints, st.states_written,
                     st.skipped_redelivered, st.unreadable)

    async def step() -> None:
        now = time.monotonic()
        if work.batch_due(now):
            await run_batch()
        if work.checkpoint_due(now):
            await checkpoint()

    async def run_batch() -> None:
        generation, events = work.generation, work.take_batch()
        batch = [(e.message.key or b"", e.message.offset, e.message.value) for e in events]
        try:
            out = processor.process(batch, table.get)
        except Exception:
            processor.forget()  # a half-applied batch must not stay live
            raise
        # force=True: send now, never as an attachment of the (unset) current event
        pending = [await alerts.send(key=a.key(), value=a.dumps(), force=True)
                   for a in out.alerts]
        for fut in pending:
            await fut  # alerts reach the broker as soon as they are found
        if generation == work.generation:  # not revoked meanwhile
            work.processed(events, out.changed)

    async def checkpoint() -> None:
        """Changed states into the table and its changelog (acked), then ack the events.

        A message's offset is committed only once a checkpoint holding its effect is
        in the changelog, so a committed offset always has its state there.
        """
        generation, held, changed = work.take_checkpoint()
        if changed:
            await write_states(processor.snapshot(changed), changed)
        if generation != work.generation or not stream_ref:
            return  # revoked while writing: the new owner replays these messages
        stream = stream_ref[0]
        for e in held:
            await stream.ack(e)

    async def write_states(states: dict[bytes, bytes], last_event: dict[bytes, faust.EventT]) -> None:
        """Write each patient's state to the store and the changelog, acked.

        ``table[key] = blob`` would queue the changelog record with ``send_soon``, and
        Faust's pre-commit flush gives up on its queue after 0.1 s, so under load the
        source offsets could be committed before the state reached the broker. Each
        record goes to the partition of the patient's samples (co-partitioning); the
        store's persisted offset is kept as Faust keeps it, for RocksDB recovery.

        Then one ``END_MARKER`` record per partition written, sent alone once the
        states are acked, so it is a record batch of its own. Recovery reads a
        changelog up to its end offset, and the development broker (Tansu 0.6, memory
        engine) reports the end offset as the *first* offset of the last record batch
        + 1: the rest of that batch (here, patients' states) was never recovered. With
        a one-record batch last, that end offset is the true one. Apache Kafka needs
        no marker and is not harmed by it (one small record per partition per batch).
        """
        pending = []
        partitions = {key: last_event[key].message.partition for key in states}
        for key, blob in states.items():
            # The RocksDB store picks the partition's database from the task's current
            # event, which noack_take leaves unset: point it at this key's own event.
            token = _current_event.set(weakref.ref(last_event[key]))
            try:
                table.data[key] = blob
            finally:
                _current_event.reset(token)
            pending.append(await send_changelog(key, blob, partitions[key]))
        for fut in pending:
            await fut
        markers = [await send_changelog(END_MARKER, b"", p)
                   for p in sorted({partitions[k] for k in states})]
        for fut in markers:
            await fut

    async def send_changelog(key: bytes, value: bytes, partition: int):
        return await table.changelog_topic.send(
            key=key, value=value, partition=partition, key_serializer="raw",
            value_serializer="raw", callback=persisted, force=True)

    def persisted(fut) -> None:
        meta = fut.result()
        table.data.set_persisted_offset(meta.topic_partition, meta.offset)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender, revoked, **kwargs):  # noqa: ARG001
        # Another worker may own (and change) these patients now: drop what is not
        # checkpointed; its messages are not acked, so their new owner replays them.
        work.reset()
        processor.forget()

    @app.task
    async def _start_thresholds():
        thresholds.start()

    return app
