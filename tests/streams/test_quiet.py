"""A patient's quieting context reaches the detector worker: alerts of an episode that
began while the patient had that detector quieted are not sent (red ones still are).

One test of the cache's rule on the real database, and two with the real worker, sink
and broker (tests/streams/test_worker.py's harness): the running worker, and a worker
started on a backlog while its first read of the quiet periods is held up."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from alerts.messages import AlertMessage
from alerts.models import Alert, DetectorQuiet
from care.models import Patient
from lib import db
from streams.replay import upload_message
from streams.thresholds import ThresholdCache
from tests.streams.test_worker import Procs, produce, worker_env  # noqa: F401 (a fixture)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _message(patient: int, detector: str, severity: str, start: datetime) -> AlertMessage:
    return AlertMessage(patient=patient, detector=detector, severity=severity, state="open", seq=1,
                        window_start=_ms(start), window_end=_ms(start) + 600_000, evidence={})


@pytest.mark.django_db(transaction=True)
def test_the_worker_cache_suppresses_only_the_quieted_detectors_non_red_episodes_begun_in_the_quiet():
    quiet, other = Patient.objects.create(display_name="quiet"), Patient.objects.create(display_name="other")
    now = datetime.now(UTC)
    DetectorQuiet.objects.create(patient=quiet, detector="hr_high_at_rest", starts_at=now - timedelta(hours=6),
                                 until=now + timedelta(hours=6))
    cache = ThresholdCache(refresh_s=60)
    assert not cache.ready.is_set()
    cache.load()
    assert cache.ready.is_set()
    assert cache.suppressed(_message(quiet.pk, "hr_high_at_rest", "yellow", now - timedelta(hours=1)))
    assert not cache.suppressed(_message(quiet.pk, "hr_high_at_rest", "red", now - timedelta(hours=1)))
    assert not cache.suppressed(_message(quiet.pk, "hr_low_at_rest", "yellow", now - timedelta(hours=1)))
    assert not cache.suppressed(_message(quiet.pk, "hr_high_at_rest", "yellow", now - timedelta(hours=7)))
    assert not cache.suppressed(_message(other.pk, "hr_high_at_rest", "yellow", now - timedelta(hours=1)))


@pytest.fixture
def procs(worker_env, tmp_path):  # noqa: F811
    ps = Procs(worker_env, tmp_path)
    yield ps
    ps.stop_all()


def quieted_and_control() -> tuple[Patient, Patient, list[tuple[int, bytes]]]:
    """A patient who quieted hr_high_at_rest and a control, and each one's upload of 20
    minutes at 135 bpm at rest (a yellow episode of hr_high_at_rest), then calm."""
    quiet = Patient.objects.create(display_name="had a drink")
    control = Patient.objects.create(display_name="control")
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    DetectorQuiet.objects.create(patient=quiet, detector="hr_high_at_rest", starts_at=t0 - timedelta(hours=1),
                                 until=t0 + timedelta(hours=6))
    samples = [{"metric": "heart_rate", "time": _ms(t0) + i * 60_000, "value": 135.0 if i < 20 else 70.0}
               for i in range(60)]
    return quiet, control, [(p.pk, upload_message(p.pk, "a", samples)) for p in (quiet, control)]


def assert_only_the_control_alerted(quiet: Patient, control: Patient, procs) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not Alert.objects.filter(patient=control).exists():
        time.sleep(0.5)
    assert Alert.objects.filter(patient=control, detector="hr_high_at_rest").exists(), procs.log("worker")[-3000:]
    time.sleep(3)  # the same batch held both patients; give the sink time for a stray row
    assert not Alert.objects.filter(patient=quiet).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_patient_who_quieted_a_detector_gets_no_alert_from_the_running_worker_while_another_does(
        kafka_topics, procs):
    quiet, control, uploads = quieted_and_control()
    procs.start("run_alert_sink", "sink")
    procs.start("run_detector_worker", "worker")
    produce(kafka_topics["samples"], uploads)
    assert_only_the_control_alerted(quiet, control, procs)


#: How long the test holds the quiet periods' table: a worker that did not wait for its
#: first read joins the group and judges the backlog well within it (about 10 s here)
HOLD_S = 25


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_started_on_a_backlog_judges_nothing_before_it_has_read_the_quiet_periods(
        kafka_topics, procs):
    quiet, control, uploads = quieted_and_control()
    # the backlog is in Kafka before the worker starts (a restart): its first take is at hand
    produce(kafka_topics["samples"], uploads)
    procs.start("run_alert_sink", "sink")
    with psycopg.connect(db.conninfo()) as holder:  # the worker's first read waits on this lock
        holder.execute(f"LOCK TABLE {DetectorQuiet._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        procs.start("run_detector_worker", "worker")
        time.sleep(HOLD_S)
        judged_while_held = Alert.objects.filter(patient=control).exists()
        holder.rollback()
    assert not judged_while_held, "the worker judged the backlog before it had read the quiet periods"
    assert_only_the_control_alerted(quiet, control, procs)
