"""The one consumer loop (lib/consumer.py), run by both sinks against the real broker
and PostgreSQL. Each test runs for the ingest sink and for the alert sink, on the three
points where the two sinks used to disagree: what SIGTERM does during a database outage,
how the offset of a dead-lettered message is booked, and the dead-letter topic's name.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db import connection

from alerts.messages import AlertMessage
from alerts.sink import AlertSink
from care.models import Patient
from ingest.schema import now_ms, to_message, validate_upload
from ingest.sink import Sink
from lib import kafka
from lib.consumer import ConsumerLoop
from tests.conftest import free_port, run_manage
from tests.ingest.conftest import topic_count
from tests.streams.conftest import read_topic

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

T0 = now_ms() - 2 * 86_400_000


def _sample_message(patient: int, k: int) -> bytes:
    batch = validate_upload(
        {"batch_id": f"loop-{k}", "samples": [
            {"metric": "heart_rate", "time": T0 + (k * 10 + i) * 1000, "value": 60.0 + i} for i in range(10)]},
        patient=patient, device=None, max_samples=5000)
    return to_message(batch)


def _samples_written(patient: int) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM samples WHERE patient_id = %s", [patient])
        return cur.fetchone()[0] // 10


def _alert_message(patient: int, k: int) -> bytes:
    start = T0 + k * 3_600_000
    return AlertMessage(patient, "nightsignal_rhr", "yellow", "open", 1, start, start + 600_000,
                        {"baseline_bpm": 60.0}, 0).dumps()


def _alerts_written(patient: int) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM alerts_alert WHERE patient_id = %s", [patient])
        return cur.fetchone()[0]


@dataclass
class Case:
    topic: str  # key of the kafka_topics fixture
    loop: type[ConsumerLoop]
    command: str
    message: Callable[[int, int], bytes]  # (patient, k) -> a good message
    written: Callable[[int], int]  # patient -> how many good messages are in the database


CASES = {
    "ingest": Case("samples", Sink, "run_ingest_sink", _sample_message, _samples_written),
    "alerts": Case("alerts", AlertSink, "run_alert_sink", _alert_message, _alerts_written),
}


def send(topic: str, key: bytes, values: list[bytes]) -> list[int]:
    """Produce in order (one key: one partition); returns the offsets. A send refused
    with NotLeaderForPartition (a topic a moment old: its leader not yet serving) is
    sent again; it was not appended."""
    from kafka.errors import NotLeaderForPartitionError

    offsets = []
    for v in values:
        for attempt in range(3):
            try:
                offsets.append(kafka.send_and_wait(topic, key, v).offset)
                break
            except NotLeaderForPartitionError:
                if attempt == 2:
                    raise
                time.sleep(1)
    return offsets


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60.0, log_path=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            log = log_path.read_text(errors="replace")[-3000:] if log_path is not None else ""
            raise AssertionError(f"timed out waiting for {what}\n{log}")
        time.sleep(0.1)


def committed(bootstrap: str, group: str, topic: str) -> int:
    """The sum of the group's committed offsets on ``topic`` (0 where none)."""
    from kafka import KafkaAdminClient

    # the admin API (OffsetFetch): a consumer with the group's id, polled while the sink
    # runs, kept the group rebalancing and the sink's commits refused
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="consumer-tests")
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return sum(max(meta.offset, 0) for tp, meta in offsets.items() if tp.topic == topic)


def run_in_thread(loop: ConsumerLoop, until: Callable[[], bool]) -> None:
    thread = threading.Thread(target=loop.run, kwargs={"max_seconds": 90})
    thread.start()
    try:
        wait_for("the sink", until, 90)
    finally:
        loop.stopping = True  # as SIGTERM does
        thread.join(30)
    assert not thread.is_alive()


@pytest.mark.parametrize("kind", CASES)
def test_a_dead_lettered_message_goes_to_topic_dot_dlq_once_and_is_not_dead_lettered_again_after_a_restart(
        kind, kafka_topics):
    case = CASES[kind]
    topic = kafka_topics[case.topic]
    patient = Patient.objects.create(display_name=f"loop {kind}").pk
    key = kafka.patient_key(patient)
    # A good message, then an unreadable one behind it on the same partition.
    offsets = send(topic, key, [case.message(patient, 0), b"this is not json"])
    group = f"loop-{kafka_topics['suffix']}"

    first = case.loop(group_id=group, batch_seconds=0.1)
    run_in_thread(first, lambda: first.stats.messages >= 2)
    assert (first.stats.written, first.stats.dead_letters) == (1, 1)

    # A restart in the same group reads only what came after.
    second = case.loop(group_id=group, batch_seconds=0.1)
    send(topic, key, [case.message(patient, 1)])
    run_in_thread(second, lambda: second.stats.written >= 1)
    assert (second.stats.messages, second.stats.dead_letters) == (1, 0)
    assert case.written(patient) == 2

    dlq = f"{topic}.dlq"
    assert kafka.dead_letter_topic(topic) == dlq
    assert topic_count(kafka_topics["bootstrap"], dlq) == 1
    (letter,) = read_topic(dlq, at_least=1)
    headers = {k: v.decode() for k, v in letter.headers}
    assert letter.value == b"this is not json" and letter.key == key
    assert "not JSON" in headers["reason"]
    partition = int(headers["origin"].split(":")[-2])
    assert headers["origin"] == f"{topic}:{partition}:{offsets[1]}"
    assert headers["group"] == group


class TcpProxy:
    """A TCP relay to PostgreSQL; ``cut()`` drops every connection and refuses new ones
    (the database is unreachable as the sink sees it), ``restore()`` relays again."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.up = threading.Event()
        self.up.set()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            doomed, self.sockets = self.sockets, []
        for s in doomed:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.cut()
        self.server.close()


@pytest.fixture
def db_proxy(settings):
    proxy = TcpProxy(int(settings.DATABASES["default"]["PORT"]))
    yield proxy
    proxy.close()


def _sink_process(case: Case, env: dict, group: str, log_path) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - the child's
    return run_manage([case.command, "--group", group], env, stdout=log, stderr=subprocess.STDOUT)


def _through_proxy(subprocess_env, db_proxy, settings) -> dict:
    """A sink process's environment: short batches, PostgreSQL reached through the cuttable relay."""
    db = settings.DATABASES["default"]
    return dict(subprocess_env, SINK_BATCH_SECONDS="0.1", ALERT_SINK_BATCH_SECONDS="0.1",
                DATABASE_URL=f"postgresql://{db['USER'] or 'postgres'}@127.0.0.1:{db_proxy.port}/{db['NAME']}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", CASES)
def test_sigterm_during_a_database_outage_gives_up_after_the_bounded_retry_and_the_next_run_writes_the_rest_once(
        kind, kafka_topics, subprocess_env, db_proxy, settings, tmp_path):
    case = CASES[kind]
    topic = kafka_topics[case.topic]
    env = _through_proxy(subprocess_env, db_proxy, settings)
    patient = Patient.objects.create(display_name=f"outage {kind}").pk
    key = kafka.patient_key(patient)
    group = f"outage-{kafka_topics['suffix']}"
    log_path = tmp_path / "sink.log"

    proc = _sink_process(case, env, group, log_path)
    try:
        send(topic, key, [case.message(patient, k) for k in range(5)])
        wait_for("the first five writes", lambda: case.written(patient) == 5, 90, log_path)
        # their offsets are committed after the write (under load, later than a second; a
        # rebalance that never finishes is left after stuck_rebalance_s, then they commit)
        wait_for("the first five offsets committed",
                 lambda: committed(kafka_topics["bootstrap"], group, topic) == 5,
                 ConsumerLoop.stuck_rebalance_s + 40, log_path)
        db_proxy.cut()
        send(topic, key, [case.message(patient, k) for k in range(5, 10)])
        wait_for("a failed write", lambda: "write failed" in log_path.read_text(errors="replace"), 30, log_path)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(ConsumerLoop.shutdown_retry_s + 20)
        waited = time.monotonic() - stopped_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text(errors="replace")
    assert code == 1, output[-3000:]  # gave up: the batch in hand was not written
    assert ConsumerLoop.shutdown_retry_s - 1 <= waited <= ConsumerLoop.shutdown_retry_s + 15, waited
    assert re.search(r"stopped with [1-5] messages unwritten", output), output[-3000:]
    assert case.written(patient) == 5

    db_proxy.restore()
    log_path.write_bytes(b"")
    proc = _sink_process(case, env, group, log_path)
    try:
        wait_for("the rest", lambda: case.written(patient) == 10, 90, log_path)
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text(errors="replace")
    # the restart read exactly the five uncommitted messages, and wrote each once
    assert "messages=5," in output, output[-3000:]
    assert case.written(patient) == 10


@pytest.mark.slow
@pytest.mark.parametrize("kind", CASES)
def test_sigterm_during_a_short_database_outage_finishes_the_batch_and_commits(
        kind, kafka_topics, subprocess_env, db_proxy, settings, tmp_path):
    case = CASES[kind]
    topic = kafka_topics[case.topic]
    env = _through_proxy(subprocess_env, db_proxy, settings)
    patient = Patient.objects.create(display_name=f"short outage {kind}").pk
    key = kafka.patient_key(patient)
    group = f"short-{kafka_topics['suffix']}"
    log_path = tmp_path / "sink.log"

    proc = _sink_process(case, env, group, log_path)
    try:
        send(topic, key, [case.message(patient, 0)])
        wait_for("the first write", lambda: case.written(patient) == 1, 90, log_path)
        db_proxy.cut()
        send(topic, key, [case.message(patient, k) for k in range(1, 4)])
        wait_for("a failed write", lambda: "write failed" in log_path.read_text(errors="replace"), 30, log_path)
        proc.send_signal(signal.SIGTERM)
        time.sleep(2)
        db_proxy.restore()  # back within the bounded retry
        code = proc.wait(ConsumerLoop.shutdown_retry_s + 20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text(errors="replace")
    assert code == 0, output[-3000:]
    # It wrote everything it had taken (the loop polls nothing while a write fails, so
    # the batch in hand holds 1 to 3 of the messages sent during the outage), and
    # committed it; what it never took stays for the next run.
    taken = int(re.findall(r"messages=(\d+),", output)[-1])
    assert 2 <= taken <= 4 and "abandoned=0" in output, output[-3000:]
    assert case.written(patient) == taken, output[-3000:]
    assert committed(kafka_topics["bootstrap"], group, topic) == taken, output[-3000:]
