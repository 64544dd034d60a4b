"""The alerts sink: alerts.v1 -> the alerts table: parse -> batch -> upsert -> commit.

* parse: ``AlertMessage.loads``; an unreadable message, or one for a patient that
  does not exist, goes to the dead-letter topic ``<alerts topic>.dlq`` with the reason.
* batch: until ``ALERT_SINK_BATCH_MESSAGES`` or ``ALERT_SINK_BATCH_SECONDS``.
* write: one transaction of idempotent upserts keyed by (patient, detector,
  window_start). A change is applied only if its ``seq`` is newer than the row's
  ``event_seq``: a message seen twice, or an old one after a new one, changes nothing.
  Updates add, never overwrite: severity only rises, the evidence at raise is written
  once, the evidence at the peak is replaced only when severity rises, and the latest
  update's severity and evidence are kept beside them.
  A clinician's status is kept, except that an episode that escalates (yellow to red)
  or re-opens after it was resolved comes back as ``open``.
* commit: offsets + 1 after the database commit, about once a second and on shutdown.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from django.conf import settings
from kafka import TopicPartition
from psycopg.types.json import Jsonb

from alerts import states
from alerts.messages import AlertError, AlertMessage
from alerts.models import Alert
from care.models import Patient
from lib import db, kafka

log = logging.getLogger(__name__)

GROUP_ID = "alert-sink"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_RANK = f"array_position(ARRAY[{states.sql_list(states.SEVERITIES)}], {{}}::text)"
_RISES = f"{_RANK.format('EXCLUDED.severity')} > {_RANK.format('a.severity')}"
# Severity only rises; ``evidence`` is the evidence at the peak (first reached highest
# severity); ``raise_evidence`` is written once; the latest update goes to its own columns.
_UPSERT = f"""
INSERT INTO {Alert._meta.db_table} AS a
    (patient_id, detector, severity, window_start, window_end, evidence, raise_evidence,
     latest_evidence, latest_severity, status, signal_closed, opened_at, updated_at,
     resolution_reason, event_seq)
VALUES (%(patient)s, %(detector)s, %(severity)s, %(window_start)s, %(window_end)s, %(evidence)s,
        %(evidence)s, %(evidence)s, %(severity)s, '{states.OPEN}', %(closed)s, now(), now(), '',
        %(seq)s)
ON CONFLICT (patient_id, detector, window_start) DO UPDATE SET
    severity = CASE WHEN {_RISES} THEN EXCLUDED.severity ELSE a.severity END,
    evidence = CASE WHEN {_RISES} THEN EXCLUDED.evidence ELSE a.evidence END,
    latest_evidence = EXCLUDED.evidence,
    latest_severity = EXCLUDED.severity,
    window_end = GREATEST(a.window_end, EXCLUDED.window_end),
    signal_closed = EXCLUDED.signal_closed,
    status = CASE
        WHEN a.status IN ({states.sql_list(states.SET_ASIDE)}) AND {_RISES} THEN '{states.OPEN}'
        WHEN a.status = '{states.RESOLVED}' AND a.signal_closed AND NOT EXCLUDED.signal_closed
            THEN '{states.OPEN}'
        ELSE a.status END,
    updated_at = now(),
    event_seq = EXCLUDED.event_seq
WHERE EXCLUDED.event_seq > a.event_seq
"""
_KNOWN_PATIENTS = f"SELECT id FROM {Patient._meta.db_table} WHERE id = ANY(%s)"


def ms_to_dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


@dataclass
class AlertSinkStats:
    messages: int = 0
    written: int = 0
    dead_letters: int = 0
    flushes: int = 0


class AlertSink(kafka.CommittingConsumer):
    def __init__(self, *, group_id: str = GROUP_ID, batch_messages: int | None = None,
                 batch_seconds: float | None = None) -> None:
        self.group_id = group_id
        self.batch_messages = batch_messages or settings.ALERT_SINK_BATCH_MESSAGES
        self.batch_seconds = (settings.ALERT_SINK_BATCH_SECONDS if batch_seconds is None
                              else batch_seconds)
        self.dlq_topic = f"{settings.KAFKA_TOPIC_ALERTS}.dlq"
        self.stats = AlertSinkStats()
        self.stopping = False
        self.conn: psycopg.Connection | None = None
        self.pending: list[tuple[TopicPartition, int, AlertMessage, object]] = []
        self.first_at = 0.0
        self._init_commits()

    def _connect(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = db.connect(autocommit=False)
        return self.conn

    def run(self, *, max_seconds: float | None = None) -> AlertSinkStats:
        kafka.ensure_topics(extra=[self.dlq_topic])
        # A short session makes a group join take seconds, not the default tens of seconds.
        consumer = kafka.consumer(
            self.group_id, [settings.KAFKA_TOPIC_ALERTS], max_poll_records=self.batch_messages,
            session_timeout_ms=min(settings.KAFKA_MAX_POLL_INTERVAL_MS, 6000),
            heartbeat_interval_ms=1000,
        )
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        log.info("alert sink started (group %s)", self.group_id)
        try:
            while not self.stopping and (deadline is None or time.monotonic() < deadline):
                records = consumer.poll(timeout_ms=50, max_records=self.batch_messages)
                for tp, messages in records.items():
                    for message in messages:
                        self._take(tp, message)
                if self.pending and (len(self.pending) >= self.batch_messages
                                     or time.monotonic() - self.first_at >= self.batch_seconds):
                    self._flush()
                self._maybe_commit(consumer)
            self._flush()
            self._maybe_commit(consumer, force=True)
        finally:
            consumer.close(autocommit=False)
            if self.conn is not None:
                self.conn.close()
        log.info("alert sink stopped: %d messages, %d written, %d dead letters",
                 self.stats.messages, self.stats.written, self.stats.dead_letters)
        return self.stats

    def _take(self, tp: TopicPartition, message) -> None:
        self.stats.messages += 1
        try:
            alert = AlertMessage.loads(message.value)
        except AlertError as exc:
            self._dead_letter(tp, message, str(exc))
            self._done(tp, message.offset)
            return
        if not self.pending:
            self.first_at = time.monotonic()
        self.pending.append((tp, message.offset, alert, message))

    def _done(self, tp: TopicPartition, offset: int) -> None:
        if not self.pending:
            self.committable[tp] = max(self.committable.get(tp, 0), offset + 1)

    def _dead_letter(self, tp: TopicPartition, message, reason: str) -> None:
        self.send_dead_letter(self.dlq_topic, tp, message, reason)

    def _flush(self) -> None:
        pending, self.pending = self.pending, []
        if not pending:
            return
        delay = 0.5
        while True:
            try:
                unknown = self._write([a for _, _, a, _ in pending])
                break
            except psycopg.OperationalError as exc:
                log.warning("database unavailable (%s); retrying in %.1fs", type(exc).__name__, delay)
                if self.conn is not None:
                    self.conn.close()
                time.sleep(delay)
                delay = min(delay * 2, 10)
        for tp, offset, alert, message in pending:
            if alert.patient in unknown:
                self._dead_letter(tp, message, f"patient {alert.patient} does not exist")
            self.committable[tp] = max(self.committable.get(tp, 0), offset + 1)
        self.stats.flushes += 1

    def _write(self, alerts: list[AlertMessage]) -> set[int]:
        """Upsert in one transaction; return the patients that do not exist (not written)."""
        conn = self._connect()
        try:
            with conn.transaction(), conn.cursor() as cur:
                ids = sorted({a.patient for a in alerts})
                cur.execute(_KNOWN_PATIENTS, (ids,))
                known = {row[0] for row in cur.fetchall()}
                rows = [
                    {"patient": a.patient, "detector": a.detector, "severity": a.severity,
                     "window_start": ms_to_dt(a.window_start), "window_end": ms_to_dt(a.window_end),
                     "evidence": Jsonb(a.evidence), "closed": a.state == "closed", "seq": a.seq}
                    for a in alerts if a.patient in known
                ]
                if rows:
                    cur.executemany(_UPSERT, rows)
            self.stats.written += len(rows)
            return set(ids) - known
        except Exception:
            if not conn.closed:
                conn.rollback()
            raise
