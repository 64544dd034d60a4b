"""The alerts sink: alerts.v1 -> the alerts table: parse -> batch -> upsert -> commit.

It runs on the one consumer loop (lib/consumer.py: batching until
``ALERT_SINK_BATCH_MESSAGES`` or ``ALERT_SINK_BATCH_SECONDS``, dead letters to
``alerts.v1.dlq``, commits after the write, retries and shutdown) and supplies:

* parse: ``AlertMessage.loads``; an unreadable message is unusable (dead-lettered with
  the reason), and so is one for a patient that does not exist (refused by the write).
* write: one transaction of idempotent upserts keyed by (patient, detector,
  window_start). A change is applied only if its ``seq`` is newer than the row's
  ``event_seq``: a message seen twice, or an old one after a new one, changes nothing.
  Updates add, never overwrite: severity only rises, the evidence at raise is written
  once, the evidence at the peak is replaced only when severity rises, and the latest
  update's severity and evidence are kept beside them.
  A clinician's status is kept, except that an episode that escalates (yellow to red)
  or re-opens after it was resolved comes back as ``open``.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import psycopg
from django.conf import settings
from psycopg.types.json import Jsonb

from alerts import states
from alerts.messages import AlertError, AlertMessage
from alerts.models import Alert
from care.models import Patient
from lib import db, metrics
from lib.consumer import ConsumerLoop, Unusable

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


class AlertSink(ConsumerLoop[AlertMessage]):
    transient_errors = (psycopg.OperationalError, psycopg.InterfaceError)
    refused_errors = (psycopg.DataError, psycopg.IntegrityError)

    def __init__(self, *, group_id: str = GROUP_ID, batch_messages: int | None = None,
                 batch_seconds: float | None = None) -> None:
        super().__init__(
            topic=settings.KAFKA_TOPIC_ALERTS, group_id=group_id,
            batch_messages=batch_messages or settings.ALERT_SINK_BATCH_MESSAGES,
            batch_seconds=settings.ALERT_SINK_BATCH_SECONDS if batch_seconds is None else batch_seconds)
        self.conn: psycopg.Connection | None = None

    def _connect(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = db.connect(autocommit=False)
        return self.conn

    def reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    close = reset

    def parse(self, value: bytes) -> AlertMessage:
        try:
            return AlertMessage.loads(value)
        except AlertError as exc:
            raise Unusable(str(exc)) from exc

    def write(self, alerts: list[AlertMessage]) -> dict[int, str]:
        unknown = self._write(alerts)
        stored = [a for a in alerts if a.patient not in unknown]
        metrics.ALERTS_STORED.inc(len(stored))
        now_s = time.time()
        for a in stored:  # from the newest sample of the alert's window to its row
            metrics.ALERT_LATENCY_SECONDS.observe(max(0.0, now_s - a.window_end / 1000))
        return {i: f"patient {a.patient} does not exist" for i, a in enumerate(alerts) if a.patient in unknown}

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
            return set(ids) - known
        except Exception:
            if not conn.closed:
                conn.rollback()
            raise
