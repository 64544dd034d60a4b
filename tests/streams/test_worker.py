"""The Faust worker and the alert sink as real processes, on the real broker and database.

A simulated cohort (two patients per episode kind... and controls) is produced to
samples.v1 as phones would upload it; ``run_detector_worker`` and ``run_alert_sink``
run as subprocesses; the alert rows must be exactly what the pure detectors give on
the same histories, every injected episode must have its alert, controls none.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from alerts.models import Alert, DetectorThreshold
from care.models import Patient
from lib import kafka
from streams.detectors import PatientMonitor, Samples
from streams.evaluate import EPISODE_DETECTORS
from streams.replay import frame_uploads, upload_message
from tests.conftest import run_manage
from tests.streams.conftest import read_topic

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

START = datetime(2026, 1, 1, tzinfo=UTC)
N_PATIENTS, DAYS = 8, 30  # patients 4 and 8 are controls


@pytest.fixture(scope="module")
def small_cohort():
    from ingest.simulator import simulate_cohort

    return simulate_cohort(N_PATIENTS, DAYS, start=START, seed=11)


@pytest.fixture
def worker_env(subprocess_env, kafka_topics, tmp_path):
    env = dict(subprocess_env)
    env.update(DETECTOR_STORE="memory://", DETECTOR_APP_ID=f"detectors-{kafka_topics['suffix']}",
               DETECTOR_DATA_DIR=str(tmp_path / "faust"), DETECTOR_THRESHOLDS_REFRESH_S="1",
               ALERT_SINK_BATCH_SECONDS="0.05")
    return env


class Procs:
    """Subprocesses this test started; all are stopped at the end, whatever happens."""

    def __init__(self, env, tmp_path):
        self.env, self.tmp_path, self.procs = env, tmp_path, []

    def start(self, command: str, name: str, **env: str) -> subprocess.Popen:
        args = [command]
        if command == "run_alert_sink":  # this test's own group: no rebalance with other tests' sinks
            args += ["--group", f"alert-sink-{self.env['DETECTOR_APP_ID']}"]
        log = open(self.tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        p = run_manage(args, {**self.env, **env}, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


@pytest.fixture
def procs(worker_env, tmp_path):
    ps = Procs(worker_env, tmp_path)
    yield ps
    ps.stop_all()


def uploads(cohort, patients):
    """(patient, message) in event-time order across patients, as live phones would send."""
    out = []
    for pid in patients:
        for i, up in enumerate(frame_uploads(cohort.frames[pid])):
            out.append((up[0]["time"], pid, upload_message(pid, f"p{pid}-{i}", up)))
    out.sort(key=lambda x: (x[0], x[1]))
    return [(pid, msg) for _, pid, msg in out]


def produce(topic, items):
    p = kafka.producer()
    futures = [p.send(topic, key=kafka.patient_key(pid), value=msg) for pid, msg in items]
    p.flush()
    for f in futures:
        f.get(timeout=30)  # raises if the broker did not take it: a lost upload fails here


def expected_rows(cohort, patients, overrides=None):
    """The final alert states the pure detectors give on the same histories."""
    out = {}
    for pid in patients:
        mon = PatientMonitor(lateness_s=600)
        if overrides and pid in overrides:
            mon.apply_overrides(overrides[pid])
        for e in mon.update(Samples.from_frame(cohort.frames[pid])):
            key = (pid, e.detector, e.window_start)
            prev = out.get(key)
            out[key] = (e.severity, max(e.window_end, prev[1] if prev else 0), e.state == "closed", e.seq)
    return out


def db_rows():
    return {
        (a.patient_id, a.detector, int(a.window_start.timestamp() * 1000)):
            (a.severity, int(a.window_end.timestamp() * 1000), a.signal_closed, a.event_seq)
        for a in Alert.objects.all()
    }


def wait_for_rows(expected, timeout_s, procs, dead_ok=()):
    deadline = time.monotonic() + timeout_s
    rows = {}
    while time.monotonic() < deadline:
        rows = db_rows()
        if rows == expected:
            return rows
        for p in procs.procs:
            if p.poll() is not None and p.returncode not in (0, -9) and p not in dead_ok:
                raise AssertionError(f"a process died ({p.returncode}):\n{procs.log('worker')[-3000:]}")
        time.sleep(0.5)
    return rows


def test_every_simulated_episode_raises_its_alert_and_controls_raise_at_most_one_a_month(small_cohort, kafka_topics, procs):
    patients = sorted(small_cohort.frames)
    for pid in patients:
        Patient.objects.create(id=pid, display_name=f"sim {pid}")
    procs.start("run_alert_sink", "sink")
    procs.start("run_detector_worker", "worker")
    produce(kafka_topics["samples"], uploads(small_cohort, patients))
    expected = expected_rows(small_cohort, patients)
    rows = wait_for_rows(expected, 150, procs)
    assert rows == expected, procs.log("worker")[-3000:] + "\n--- sink ---\n" + procs.log("sink")[-2000:]

    episodes = small_cohort.episodes
    controls = set(patients) - set(episodes["patient"].astype(int))
    assert controls  # nuisance only (late nights, alcohol, travel...): at most one non-info alert a month
    for c in controls:
        assert Alert.objects.filter(patient_id=c).exclude(severity="info").count() <= 1
    for ep in episodes.itertuples():
        hits = Alert.objects.filter(patient_id=ep.patient, detector__in=EPISODE_DETECTORS[ep.kind],
                                    window_end__gte=ep.start - np.timedelta64(1, "D"),
                                    window_start__lte=ep.end + np.timedelta64(1, "D"))
        assert hits.exists(), f"no alert for {ep.kind} of patient {ep.patient}"
    # one illness episode per patient, carrying its contributors' evidence; no per-detector duplicates
    assert not Alert.objects.filter(detector__in=["nightsignal_rhr", "cusum_rhr"]).exists()
    evidence = Alert.objects.filter(detector="illness_rhr").first().evidence
    night = evidence["contributors"]["nightsignal_rhr"]["evidence"]
    assert {"baseline_bpm", "nights", "yellow_delta_bpm", "red_delta_bpm"} <= set(night)


def test_a_clinicians_override_reaches_a_running_worker(kafka_topics, procs):
    patient = Patient.objects.create(display_name="override")
    procs.start("run_alert_sink", "sink")
    procs.start("run_detector_worker", "worker")
    t0 = int(START.timestamp() * 1000)
    # 20 minutes at 110 bpm, at rest: under the default 120 bpm, over the clinician's 100
    # (then 20 calm minutes, so that the event-time watermark judges the first 20 before the change)
    first = [{"metric": "heart_rate", "time": t0 + i * 60_000, "value": 110.0 if i < 20 else 70.0}
             for i in range(40)]
    produce(kafka_topics["samples"], [(patient.pk, upload_message(patient.pk, "a", first))])
    # the worker has applied the first upload once its state is in the table's changelog
    changelog = f"{procs.env['DETECTOR_APP_ID']}-state-changelog"
    assert read_topic(changelog, at_least=1, timeout_s=90), procs.log("worker")[-3000:]
    DetectorThreshold.objects.create(patient=patient, detector="hr_high_at_rest", params={"threshold": 100})
    time.sleep(2.5)  # the workers re-read overrides every second here
    later = [{"metric": "heart_rate", "time": t0 + (60 + i) * 60_000, "value": 110.0} for i in range(40)]
    assert not Alert.objects.filter(patient=patient).exists()
    produce(kafka_topics["samples"], [(patient.pk, upload_message(patient.pk, "b", later))])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not Alert.objects.filter(patient=patient).exists():
        time.sleep(0.5)
    alerts = list(Alert.objects.filter(patient=patient))
    assert [(a.detector, int(a.window_start.timestamp() * 1000)) for a in alerts] == [
        ("hr_high_at_rest", t0 + 60 * 60_000)]
    assert alerts[0].evidence["threshold_bpm"] == 100


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_killing_the_worker_mid_replay_loses_and_doubles_no_alert(small_cohort, kafka_topics, procs, store):
    procs.env["DETECTOR_STORE"] = store  # rocksdb: the production store, its files kept over the kill
    patients, items, half, worker = first_half_applied(small_cohort, kafka_topics, procs)
    # the second half streams in while the worker is killed without warning
    feeder = threading.Thread(target=produce, args=(kafka_topics["samples"], items[half:]))
    feeder.start()
    time.sleep(1.0)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    feeder.join()
    procs.start("run_detector_worker", "worker")
    expected = expected_rows(small_cohort, patients)
    rows = wait_for_rows(expected, 300, procs, dead_ok=(worker,))
    assert_rows_equal(rows, expected, procs.log("worker"))
    # none doubled: one row per episode, and alerts.v1 holds no change twice with different content
    assert Alert.objects.count() == len(expected)


def test_two_workers_share_the_partitions_and_a_join_mid_stream_loses_and_doubles_no_alert(
        small_cohort, kafka_topics, procs, tmp_path):
    patients, items, half, _ = first_half_applied(small_cohort, kafka_topics, procs,
                                                  DETECTOR_DATA_DIR=str(tmp_path / "faust-a"))
    # a second worker joins the group while the rest streams in (over about 15 s): a
    # rebalance mid-stream, the first worker gives up partitions it is working on
    rest = items[half:]
    step = max(1, len(rest) // 30)

    def trickle():
        for i in range(0, len(rest), step):
            produce(kafka_topics["samples"], rest[i:i + step])
            time.sleep(0.5)

    feeder = threading.Thread(target=trickle)
    procs.start("run_detector_worker", "worker2", DETECTOR_DATA_DIR=str(tmp_path / "faust-b"))
    feeder.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not assigned_samples(procs.log("worker2"), kafka_topics):
        time.sleep(0.5)
    feeder.join()
    assert assigned_samples(procs.log("worker2"), kafka_topics), procs.log("worker2")[-3000:]
    expected = expected_rows(small_cohort, patients)
    rows = wait_for_rows(expected, 300, procs)
    assert_rows_equal(rows, expected, procs.log("worker2"))


def first_half_applied(cohort, kafka_topics, procs, **worker_env):
    """Sink and one worker running, the first half of the uploads applied (states written)."""
    patients = sorted(cohort.frames)
    for pid in patients:
        Patient.objects.create(id=pid, display_name=f"sim {pid}")
    items = uploads(cohort, patients)
    half = len(items) // 2
    procs.start("run_alert_sink", "sink")
    worker = procs.start("run_detector_worker", "worker", **worker_env)
    produce(kafka_topics["samples"], items[:half])
    changelog = f"{procs.env['DETECTOR_APP_ID']}-state-changelog"
    assert read_topic(changelog, at_least=len(patients), timeout_s=120), procs.log("worker")[-3000:]
    return patients, items, half, worker


def assert_rows_equal(rows, expected, worker_log: str) -> None:
    different = {k: (v, rows.get(k)) for k, v in expected.items() if rows.get(k) != v}
    extra = {k: v for k, v in rows.items() if k not in expected}
    # the workers' warnings and errors from the whole log (holes read again, crashes), then its tail
    flagged = [line for line in worker_log.splitlines() if " WARNING " in line or " ERROR " in line]
    assert rows == expected, (f"(expected, stored) where they differ: {different}\n"
                              f"unexpected: {extra}\n" + "\n".join(flagged[-30:]) + "\n"
                              + worker_log[-2000:])


def assigned_samples(log: str, kafka_topics) -> bool:
    """Whether a worker's log shows partitions of samples.v1 assigned to it."""
    return any(f"topic='{kafka_topics['samples']}'" in line for line in log.splitlines()
               if "Setting newly assigned partitions" in line)
