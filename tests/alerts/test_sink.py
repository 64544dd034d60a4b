"""The alert sink against the real broker and PostgreSQL."""

from __future__ import annotations

import orjson
import pytest

from alerts.messages import AlertMessage
from alerts.models import Alert
from alerts.sink import AlertSink
from care.models import Patient
from lib import kafka
from tests.streams.conftest import read_topic

T0 = 1_767_225_600_000


def alert(patient, seq, state="open", severity="yellow", start=T0, end=T0 + 3_600_000, **evidence):
    return AlertMessage(patient, "nightsignal_rhr", severity, state, seq, start, end,
                        evidence or {"baseline_bpm": 60.0}, 0)


def send(topic, messages):
    p = kafka.producer()
    for m in messages:
        value = m if isinstance(m, bytes) else m.dumps()
        key = b"0" if isinstance(m, bytes) else m.key()
        p.send(topic, key=key, value=value)
    p.flush()


def drain(group, expect):
    """Run the sink until it has read ``expect`` messages (a group join can be slow), then stop it."""
    import threading
    import time

    sink = AlertSink(group_id=group, batch_seconds=0.05)
    t = threading.Thread(target=sink.run, kwargs={"max_seconds": 60})
    t.start()
    deadline = time.monotonic() + 60
    while sink.stats.messages < expect and time.monotonic() < deadline:
        time.sleep(0.1)
    sink.stopping = True  # as SIGTERM does: flush, commit, stop
    t.join(30)
    return sink


@pytest.mark.django_db(transaction=True)
def test_the_sink_upserts_one_row_per_episode_and_keeps_the_newest_change(kafka_topics):
    p = Patient.objects.create(display_name="a")
    send(kafka_topics["alerts"], [
        alert(p.pk, 1),
        alert(p.pk, 2, "update", "red", end=T0 + 7_200_000, delta=5),
        alert(p.pk, 1),  # a re-delivery of the first change: older, ignored
        alert(p.pk, 3, "closed", "red", end=T0 + 9_000_000, delta=0.5),
        alert(p.pk, 3, "closed", "red", end=T0 + 9_000_000, delta=0.5),  # a duplicate
    ])
    sink = drain(f"sink-{kafka_topics['suffix']}", 5)
    rows = list(Alert.objects.filter(patient=p))
    assert len(rows) == 1
    row = rows[0]
    assert (row.severity, row.signal_closed, row.event_seq, row.status) == ("red", True, 3, "open")
    assert int(row.window_end.timestamp() * 1000) == T0 + 9_000_000
    assert row.evidence == {"delta": 5}  # the peak: the update that made it red
    assert (row.latest_evidence, row.latest_severity) == ({"delta": 0.5}, "red")
    assert sink.stats.written == 5


@pytest.mark.django_db(transaction=True)
def test_an_update_never_lowers_the_severity_nor_erases_the_evidence_at_raise_or_peak(kafka_topics):
    p = Patient.objects.create(display_name="peak")
    send(kafka_topics["alerts"], [
        alert(p.pk, 1, "open", "yellow", rise_bpm=4.2),
        alert(p.pk, 2, "update", "red", rise_bpm=9.1),
        alert(p.pk, 3, "update", "red", rise_bpm=6.0),    # same severity, smaller rise
        alert(p.pk, 4, "update", "yellow", rise_bpm=0.1),  # the signal fades
    ])
    drain(f"sink-{kafka_topics['suffix']}", 4)
    row = Alert.objects.get(patient=p)
    assert row.severity == "red"
    assert row.raise_evidence == {"rise_bpm": 4.2}
    assert row.evidence == {"rise_bpm": 9.1}
    assert (row.latest_severity, row.latest_evidence) == ("yellow", {"rise_bpm": 0.1})


@pytest.mark.django_db(transaction=True)
def test_an_escalation_reopens_an_alert_a_clinician_had_acknowledged(kafka_topics):
    p = Patient.objects.create(display_name="b")
    send(kafka_topics["alerts"], [alert(p.pk, 1)])
    drain(f"sink-{kafka_topics['suffix']}", 1)
    Alert.objects.filter(patient=p).update(status="acknowledged")
    send(kafka_topics["alerts"], [alert(p.pk, 2, "update", "red")])
    drain(f"sink-{kafka_topics['suffix']}", 1)
    assert Alert.objects.get(patient=p).status == "open"


@pytest.mark.django_db(transaction=True)
def test_unreadable_alerts_and_unknown_patients_go_to_the_dead_letter_topic(kafka_topics):
    p = Patient.objects.create(display_name="c")
    send(kafka_topics["alerts"], [b"not json", alert(p.pk + 1000, 1), alert(p.pk, 1)])
    sink = drain(f"sink-{kafka_topics['suffix']}", 3)
    assert Alert.objects.filter(patient=p).count() == 1
    assert sink.stats.dead_letters == 2
    reasons = [dict(m.headers)["reason"].decode()
               for m in read_topic(f"{kafka_topics['alerts']}.dlq", at_least=2)]
    assert any("not JSON" in r for r in reasons)
    assert any("does not exist" in r for r in reasons)


def test_an_alert_message_survives_a_round_trip():
    m = alert(7, 2, "update", "red", x=1.5)
    assert AlertMessage.loads(m.dumps()) == m
    assert orjson.loads(m.dumps())["schema_version"] == 1
