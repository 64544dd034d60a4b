"""The one consumer loop of every sink: poll -> parse -> batch -> write -> commit.

A sink subclasses ``ConsumerLoop`` and supplies ``parse`` (bytes -> item, or raise
``Unusable``) and ``write`` (a batch of items -> the ones it refused, with reasons).
The loop owns everything else, the same way for every sink:

* **batch**: messages are buffered until ``batch_messages`` or ``batch_seconds``; the
  loop never polls more than one batch ahead, so a slow write stops polling
  (back-pressure) instead of buffering without bound.
* **dead letters**: a message that ``parse`` calls unusable, or that ``write`` refused,
  goes to ``dead_letter_topic(topic)`` (``<topic>.dlq``, for every sink) with headers
  ``reason``, ``origin`` (topic:partition:offset) and ``group``. It never stops the loop
  and is never dropped silently.
* **commit**: the offset + 1 of every message of a batch (written or dead-lettered
  alike) is committed only after the write committed and the dead letters were
  acknowledged, about once a second and on shutdown. A dead-lettered message is booked
  exactly like a written one, so a restart never dead-letters it again. Commits that keep
  meeting a rebalance for ``stuck_rebalance_s`` make the loop leave the group and join
  again with a new consumer (what came since the last commit is read again).
* **retries**: an error of ``transient_errors`` (the database is unreachable) or a
  broker error while dead-lettering is retried with backoff (0.5 s doubling to 10 s),
  for as long as it takes while running. An error of ``refused_errors`` (the database
  refused the data) makes the loop write the batch again one item at a time; an item
  refused alone is dead-lettered.
* **shutdown** (SIGTERM/SIGINT, or ``stopping = True``): polling stops, the batch in
  hand is written, offsets are committed and the loop returns. If the write keeps
  failing, it is retried for at most ``shutdown_retry_s`` more, then abandoned: its
  offsets are not committed, so the next run reads those messages again (nothing is
  lost; the writes are idempotent, so nothing doubles). ``stats.abandoned`` counts them.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kafka import OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, KafkaError, RebalanceInProgressError

from lib import kafka, logs, metrics

log = logging.getLogger(__name__)
#: one line per message written, with its upload's request and batch ids (level INFO to follow
#: an upload through the logs: LOG_UPLOADS=INFO; off by default)
uploads = logging.getLogger("healthstream.uploads")

T = TypeVar("T")

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0


dead_letter_topic = kafka.dead_letter_topic


class Unusable(ValueError):  # noqa: N818 - reads as "the message is unusable"
    """Raised by ``parse``: the message can never be written; the text is the reason."""


class GaveUp(Exception):  # noqa: N818
    """The loop stopped before it could write a batch; its offsets stay uncommitted."""


@dataclass
class LoopStats:
    messages: int = 0
    written: int = 0
    dead_letters: int = 0
    flushes: int = 0
    retries: int = 0
    abandoned: int = 0  # messages left unwritten (and uncommitted) at shutdown


@dataclass
class _Entry:
    tp: TopicPartition
    message: Any  # kafka ConsumerRecord
    item: Any = None
    reason: str | None = None  # set: this message goes to the dead-letter topic


class ConsumerLoop(Generic[T]):
    """Subclass and supply ``parse`` and ``write`` (and ``reset`` to drop a connection)."""

    #: write() errors meaning "not now": wait and retry the whole batch
    transient_errors: tuple[type[BaseException], ...] = ()
    #: write() errors meaning "not this data": retry one by one, dead-letter the refused
    refused_errors: tuple[type[BaseException], ...] = ()
    #: after a stop request, how long a failing write is still retried
    shutdown_retry_s: float = 10.0
    commit_every_s: float = 1.0
    poll_timeout_ms: int = 50
    #: at shutdown, how long a commit that met a rebalance waits for the rejoin
    rejoin_s: float = 15.0
    #: while running, how long commits may keep meeting a rebalance before the loop leaves
    #: the group and joins it again with a new consumer (see ``_rejoin``)
    stuck_rebalance_s: float = 20.0

    def __init__(self, *, topic: str, group_id: str, batch_messages: int, batch_seconds: float,
                 stats: LoopStats | None = None) -> None:
        self.topic = topic
        self.dlq_topic = dead_letter_topic(topic)
        self.group_id = group_id
        self.batch_messages = batch_messages
        self.batch_seconds = batch_seconds
        self.stats = stats or LoopStats()
        self.stopping = False
        self._pending: list[_Entry] = []
        self._first_at = 0.0
        self._committable: dict[TopicPartition, int] = {}
        self._last_commit = time.monotonic()
        self._lag_at = 0.0
        self._rebalancing_since: float | None = None

    # -- what a sink supplies ------------------------------------------------
    def parse(self, value: bytes) -> T:
        """The item a message holds; raise ``Unusable`` (with the reason) if it has none."""
        raise NotImplementedError

    def write(self, items: list[T]) -> dict[int, str]:
        """Write the items durably (one transaction); return {index: reason} of those refused."""
        raise NotImplementedError

    def reset(self) -> None:
        """Called after a transient error: drop the connection, the next write reconnects."""

    def close(self) -> None:
        """Called once when the loop ends."""

    # -- the loop --------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def stop(signum, _frame):
            log.info("signal %s: writing the batch in hand, committing and stopping", signum)
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run(self, *, max_seconds: float | None = None) -> LoopStats:
        kafka.ensure_topics(extra=[self.topic, self.dlq_topic])
        consumer = self._new_consumer()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        log.info("%s consuming %s (group %s)", type(self).__name__, self.topic, self.group_id)
        last_report = time.monotonic()
        try:
            while not self.stopping and (deadline is None or time.monotonic() < deadline):
                room = self.batch_messages - len(self._pending)
                records = consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=max(room, 1))
                for tp, messages in records.items():
                    for message in messages:
                        self._take(tp, message)
                if self._pending and (len(self._pending) >= self.batch_messages
                                      or time.monotonic() - self._first_at >= self.batch_seconds):
                    self._flush()
                self._commit(consumer)
                if self._rebalancing_since is not None \
                        and time.monotonic() - self._rebalancing_since > self.stuck_rebalance_s:
                    consumer = self._rejoin(consumer)
                self._report_lag(consumer)
                if time.monotonic() - last_report > 30:
                    last_report = time.monotonic()
                    log.info("%s: %s", type(self).__name__, self.stats)
            self._flush()
            self._commit(consumer, force=True)
        except GaveUp:
            self.stats.abandoned += len(self._pending)
            log.warning("stopped with %d messages unwritten: their offsets are not committed, so the "
                        "next run reads them again", len(self._pending))
            self._pending = []
            self._commit(consumer, force=True)  # what was written before stays booked
        finally:
            consumer.close(autocommit=False)
            self.close()
        log.info("%s stopped: %s", type(self).__name__, self.stats)
        return self.stats

    # -- the steps ---------------------------------------------------------------
    def _new_consumer(self):
        # A short session makes a group join (and a dead member's hand-over) take seconds;
        # 10 s, as the detector workers use: 6 s was tight on a loaded machine.
        return kafka.consumer(self.group_id, [self.topic], max_poll_records=self.batch_messages,
                              session_timeout_ms=10_000, heartbeat_interval_ms=1000)

    def _rejoin(self, consumer):
        """Commits kept meeting a rebalance for ``stuck_rebalance_s``: leave the group and
        join it again with a new consumer. Seen on a loaded machine with kafka-python 3.0:
        a one-member group's rejoin, once started, never finished while the loop polled
        every 50 ms, and every commit answered RebalanceInProgressError. What was polled
        or written since the last commit is read again from the committed offsets; the
        writes are idempotent, so nothing doubles."""
        log.warning("offset commits met a rebalance for %.0f s: leaving the group and joining it "
                    "again (what came since the last commit is read again)",
                    time.monotonic() - (self._rebalancing_since or time.monotonic()))
        try:
            consumer.close(autocommit=False)
        except Exception as exc:  # noqa: BLE001 - the old consumer is dropped either way
            log.warning("closing the stuck consumer failed (%s)", type(exc).__name__)
        self._pending = []
        self._committable = {}
        self._rebalancing_since = None
        return self._new_consumer()

    def _report_lag(self, consumer) -> None:
        """The group's lag (end of each assigned partition minus its position), at most every 5 s."""
        now = time.monotonic()
        if now - self._lag_at < 5:
            return
        self._lag_at = now
        lag = 0
        try:
            for tp in consumer.assignment():
                end = consumer.highwater(tp)
                if end is not None:
                    lag += max(0, end - consumer.position(tp, timeout_ms=100))
        except Exception as exc:  # noqa: BLE001 - a gauge never stops the sink (broker down, rebalance)
            log.debug("consumer lag not measured (%s)", type(exc).__name__)
            return
        metrics.CONSUMER_LAG.labels(self.group_id).set(lag)

    def _take(self, tp: TopicPartition, message) -> None:
        self.stats.messages += 1
        entry = _Entry(tp, message)
        try:
            entry.item = self.parse(message.value)
        except Unusable as exc:
            entry.reason = str(exc) or type(exc).__name__
        if not self._pending:
            self._first_at = time.monotonic()
        self._pending.append(entry)

    def _flush(self) -> None:
        """Write the pending batch, dead-letter what is unusable, book every offset."""
        entries = self._pending
        if not entries:
            return
        usable = [e for e in entries if e.reason is None]
        if usable:
            refused = self._retrying("write", lambda: self._write_all([e.item for e in usable]))
            for index, reason in refused.items():
                usable[index].reason = reason
        for entry in entries:
            if entry.reason is not None:
                self._retrying("dead letter", lambda e=entry: self._send_dead_letter(e))
        self.stats.written += sum(1 for e in usable if e.reason is None)
        if uploads.isEnabledFor(logging.INFO):
            for entry in usable:
                if entry.reason is None:
                    ids = dict(entry.message.headers or ())
                    uploads.info("%s wrote batch %s (request %s) from %s[%d]@%d", type(self).__name__,
                                 header_id(ids.get("batch_id")), header_id(ids.get("request_id")),
                                 entry.tp.topic, entry.tp.partition, entry.message.offset)
        for entry in entries:
            offset = entry.message.offset + 1
            if offset > self._committable.get(entry.tp, 0):
                self._committable[entry.tp] = offset
        self._pending = []
        self.stats.flushes += 1

    def _write_all(self, items: list[T]) -> dict[int, str]:
        try:
            return self.write(items)
        except self.refused_errors as exc:
            if len(items) == 1:
                return {0: f"refused by the database: {type(exc).__name__}"}
            log.warning("a write of %d items was refused (%s); writing them one by one",
                        len(items), type(exc).__name__)
        refused: dict[int, str] = {}
        for index, item in enumerate(items):
            try:
                if self.write([item]):
                    refused[index] = "refused by the sink"
            except self.refused_errors as exc:
                refused[index] = f"refused by the database: {type(exc).__name__}"
        return refused

    def _retrying(self, what: str, step):
        """Run ``step`` until it succeeds, waiting out transient errors; after a stop
        request, give up (raise GaveUp) once ``shutdown_retry_s`` have passed."""
        delay = RETRY_FIRST_S
        give_up_at: float | None = None
        while True:
            try:
                return step()
            except (*self.transient_errors, KafkaError) as exc:
                self.stats.retries += 1
                self.reset()
                now = time.monotonic()
                if self.stopping:
                    give_up_at = give_up_at or now + self.shutdown_retry_s
                    if now >= give_up_at:
                        raise GaveUp(what) from exc
                log.warning("%s failed (%s); retrying in %.1f s", what, type(exc).__name__, delay)
                wake = now + delay
                while time.monotonic() < wake:
                    if self.stopping and give_up_at is None:
                        break  # a stop request starts the bounded retry at once
                    time.sleep(min(0.1, max(0.0, wake - time.monotonic())))
                delay = min(delay * 2, RETRY_MAX_S)

    def _send_dead_letter(self, entry: _Entry) -> None:
        """Put the message on the dead-letter topic with its reason and origin, and wait
        for the broker's ack (its offset is committed after). Never logs the value."""
        tp, message = entry.tp, entry.message
        reason = entry.reason or "unusable"
        log.warning("dead letter from %s[%d]@%d: %s", tp.topic, tp.partition, message.offset, reason[:200])
        kafka.producer().send(
            self.dlq_topic, key=message.key, value=message.value,
            headers=[("reason", reason[:1000].encode()),
                     ("origin", f"{tp.topic}:{tp.partition}:{message.offset}".encode()),
                     ("group", self.group_id.encode())],
        ).get(timeout=kafka.ack_timeout_s())
        self.stats.dead_letters += 1
        metrics.DEAD_LETTERS.labels(self.dlq_topic).inc()

    def _commit(self, consumer, force: bool = False) -> None:
        if not self._committable:
            return
        if not force and time.monotonic() - self._last_commit < self.commit_every_s:
            return
        offsets = {tp: OffsetAndMetadata(off, "", -1) for tp, off in self._committable.items()}
        self._last_commit = time.monotonic()
        try:
            consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced under us (a slow write, a new member). The writes are
            # durable and idempotent, so the re-delivery after the rebalance adds nothing.
            log.warning("offset commit refused after a rebalance; those messages will be read again")
        except RebalanceInProgressError:
            if force and self._commit_after_rejoin(consumer, offsets):
                self._committable = {}
                return
            log.warning("offset commit failed (RebalanceInProgressError); retrying later")
            if self._rebalancing_since is None:
                self._rebalancing_since = time.monotonic()
            return
        except KafkaError as exc:
            # The broker is unreachable: keep the offsets and try again later.
            log.warning("offset commit failed (%s); retrying later", type(exc).__name__)
            return
        self._committable = {}
        self._rebalancing_since = None

    def _commit_after_rejoin(self, consumer, offsets) -> bool:
        """At shutdown, a commit that met a rebalance: let the consumer rejoin (a short poll;
        what it fetches is not committed, so it is read again) and commit once more, for
        up to ``rejoin_s``: on a loaded machine a rejoin took more than the 5 s once tried."""
        deadline = time.monotonic() + self.rejoin_s
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=1000, max_records=1)
            try:
                consumer.commit(offsets)
                return True
            except RebalanceInProgressError:
                continue
            except (CommitFailedError, KafkaError) as exc:
                log.warning("offset commit at shutdown failed (%s): those messages will be read again",
                            type(exc).__name__)
                return False
        return False


def header_id(raw) -> str:
    """An id from a message header, checked (``-`` when absent or malformed)."""
    if isinstance(raw, bytes | bytearray):
        return logs.valid_id(bytes(raw).decode("ascii", "replace")) or "-"
    return "-"
