"""Clinicians' per-patient overrides and patients' quiet periods, re-read by the
workers without a restart.

A daemon thread reads the ``DetectorThreshold`` table (and patients' time zones) every
``DETECTOR_THRESHOLDS_REFRESH_S`` seconds with psycopg (never the Django ORM: the
worker is async) and swaps in a new dict. The agent asks it for one patient's
overrides before each update; ``PatientMonitor.apply_overrides`` changes the running
detectors' tunable parameters in place (their learned state is kept).

Quiet periods (``DetectorQuiet``, made when a patient reports context such as alcohol,
travel or illness) are read the same way: ``suppressed`` says whether an alert message
belongs to an episode that began while its detector was quieted for that patient; the
agent drops those, except red ones (a red alert always reaches the care team, as the
queue shows quieted red alerts too). This is the rule of ``alerts.queries.quieted_q``.
"""

from __future__ import annotations

import logging
import threading
import zoneinfo
from datetime import UTC, datetime

import psycopg

from alerts import states
from alerts.messages import AlertMessage
from alerts.models import DetectorQuiet, DetectorThreshold
from care.models import Patient
from lib import db
from streams.detectors import validate_overrides

log = logging.getLogger(__name__)

_SQL = f"SELECT patient_id, detector, params FROM {DetectorThreshold._meta.db_table}"
#: Quiet periods not yet over (an episode is matched by its window's start).
_QUIET_SQL = (f"SELECT patient_id, detector, starts_at, until FROM {DetectorQuiet._meta.db_table} "
              "WHERE until > now() - interval '14 days'")
_TZ_SQL = f"SELECT id, timezone FROM {Patient._meta.db_table} WHERE timezone <> 'UTC'"


def utc_offset_minutes(tz: str, at: datetime | None = None) -> int:
    """The offset of an IANA zone now (a fixed offset per patient; see docs/detectors.md)."""
    try:
        off = (at or datetime.now(UTC)).astimezone(zoneinfo.ZoneInfo(tz)).utcoffset()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return 0
    return int(off.total_seconds() // 60) if off is not None else 0


class ThresholdCache:
    def __init__(self, refresh_s: float, conninfo: str | None = None) -> None:
        self.refresh_s = refresh_s
        self.conninfo = conninfo
        self._overrides: dict[int, dict[str, dict]] = {}
        self._tz: dict[int, int] = {}
        self._quiet: dict[int, list[tuple[str, int, int]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loads = 0
        #: set by the first successful read: ``run_detector_worker`` waits for it before
        #: the worker takes anything (a take judged earlier would use the defaults, in
        #: UTC, and send alerts a patient had quieted)
        self.ready = threading.Event()

    def overrides(self, patient: int) -> dict[str, dict]:
        return self._overrides.get(patient, {})

    def tz_offset(self, patient: int) -> int:
        return self._tz.get(patient, 0)

    def suppressed(self, alert: AlertMessage) -> bool:
        """The alert's episode began while the patient had its detector quieted (and it
        is not red): the worker does not send it."""
        if alert.severity == states.RED:
            return False
        return any(d == alert.detector and start <= alert.window_start < until
                   for d, start, until in self._quiet.get(alert.patient, ()))

    def load(self) -> None:
        """Read everything once (raises on a database error)."""
        info = self.conninfo or db.conninfo()
        with psycopg.connect(info, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(_SQL)
            rows = cur.fetchall()
            cur.execute(_TZ_SQL)
            tz_rows = cur.fetchall()
            cur.execute(_QUIET_SQL)
            quiet_rows = cur.fetchall()
        overrides: dict[int, dict[str, dict]] = {}
        bad = 0
        for patient, detector, params in rows:
            try:
                overrides.setdefault(int(patient), {})[detector] = validate_overrides(detector, params or {})
            except ValueError as exc:
                bad += 1
                log.warning("ignoring an override of patient %s: %s", patient, exc)
        self._overrides = overrides
        self._tz = {int(p): utc_offset_minutes(tz) for p, tz in tz_rows}
        quiet: dict[int, list[tuple[str, int, int]]] = {}
        for patient, detector, starts, until in quiet_rows:
            quiet.setdefault(int(patient), []).append(
                (detector, int(starts.timestamp() * 1000), int(until.timestamp() * 1000)))
        self._quiet = quiet
        self.loads += 1
        self.ready.set()
        log.debug("thresholds: %d overrides for %d patients (%d refused)", len(rows) - bad,
                  len(overrides), bad)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.load()
            except psycopg.Error as exc:
                log.warning("could not read detector thresholds (%s); keeping the last ones",
                            type(exc).__name__)
            self._stop.wait(self.refresh_s)

    def start(self) -> ThresholdCache:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="detector-thresholds", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
