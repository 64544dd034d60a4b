"""The worker's step without Faust: the processor's bookkeeping and the batcher's timing.

The worker itself, on the real broker, is in test_worker.py; these pin the two rules its
exactly-once argument rests on: a re-delivered message is never applied twice, and a
message is acked only after a checkpoint that holds its effect.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from streams.app import Batcher
from streams.processor import DetectorProcessor, PatientState
from streams.replay import upload_message

T0 = 1_767_225_600_000  # 2026-01-01 UTC


def msg(pid: int, i: int, n: int = 15) -> bytes:
    run = [{"metric": "heart_rate", "time": T0 + (i * n + m) * 60_000, "value": 60.0 + m % 5}
           for m in range(n)]
    return upload_message(pid, f"b{pid}-{i}", run)


def test_a_redelivered_message_is_skipped_and_only_new_ones_change_the_state():
    proc = DetectorProcessor(lateness_s=600)
    table: dict[bytes, bytes] = {}
    out = proc.process([(b"7", 10, msg(7, 0)), (b"7", 11, msg(7, 1))], table.get)
    assert out.changed == {b"7"}
    table.update(proc.snapshot(out.changed))
    assert PatientState.loads(table[b"7"]).offset == 11

    # a restarted worker: nothing live, the table's state; offsets 10-11 come again
    again = DetectorProcessor(lateness_s=600)
    out = again.process([(b"7", 10, msg(7, 0)), (b"7", 11, msg(7, 1)), (b"7", 12, msg(7, 2))], table.get)
    assert again.stats.skipped_redelivered == 2
    assert again.stats.samples == 15
    assert out.changed == {b"7"}
    assert PatientState.loads(again.snapshot({b"7"})[b"7"]).offset == 12


def test_a_batch_of_only_redelivered_messages_changes_nothing():
    proc = DetectorProcessor(lateness_s=600)
    table: dict[bytes, bytes] = {}
    table.update(proc.snapshot(proc.process([(b"3", 5, msg(3, 0))], table.get).changed))
    proc.forget()
    out = proc.process([(b"3", 5, msg(3, 0))], table.get)
    assert out.changed == set() and out.alerts == []


def test_an_unreadable_message_is_counted_and_the_rest_of_the_batch_applied():
    proc = DetectorProcessor(lateness_s=600)
    out = proc.process([(b"4", 1, b"not json"), (b"4", 2, msg(5, 0)), (b"4", 3, msg(4, 1))], {}.get)
    assert proc.stats.unreadable == 2  # not JSON; another patient's message under key 4
    assert proc.stats.samples == 15 and out.changed == {b"4"}


NOW = 1_800_000_000.0  # epoch seconds


def ev(key: bytes, offset: int, stamped: float = NOW):
    return SimpleNamespace(message=SimpleNamespace(key=key, offset=offset, partition=0,
                                                   timestamp=stamped))


def test_the_batcher_runs_a_live_batch_after_the_wait_and_a_backlog_batch_later():
    b = Batcher(max_messages=100, within_s=0.5, backlog_wait_s=2.0, checkpoint_s=1.0)
    b.add([ev(b"1", 0, stamped=NOW - 0.05)], now=NOW)  # live: stamped by the broker just now
    t = b.first_at
    assert not b.behind
    assert not b.batch_due(t + 0.4)
    assert b.batch_due(t + 0.5)
    b.add([ev(b"1", 1, stamped=NOW - 60)], now=NOW)  # a minute old: behind, gather longer
    assert b.behind
    assert not b.batch_due(t + 1.9)
    assert b.batch_due(t + 2.0)
    b.add([ev(b"2", i, stamped=NOW - 60) for i in range(2, 100)], now=NOW)
    assert b.batch_due(t)  # full


def test_processed_messages_are_held_until_a_checkpoint_and_a_reset_drops_them():
    b = Batcher(max_messages=100, within_s=0.5, backlog_wait_s=2.0, checkpoint_s=1.0)
    events = [ev(b"1", 0), ev(b"2", 1), ev(b"1", 2)]
    b.add(events, now=NOW)
    b.processed(b.take_batch(), changed={b"1"})
    assert not b.checkpoint_due(b.checkpoint_at + 0.5)
    assert b.checkpoint_due(b.checkpoint_at + 1.0)
    generation, held, changed = b.take_checkpoint()
    assert held == events
    assert changed == {b"1": events[2]}  # the key's last event: its partition for the store
    assert not b.checkpoint_due(b.checkpoint_at + 5)  # nothing held

    b.add([ev(b"1", 3)], now=NOW)
    b.processed(b.take_batch(), changed={b"1"})
    b.reset()
    assert b.generation == generation + 1
    assert b.held == [] and b.changed == {} and b.waiting == []


@pytest.mark.parametrize("name", ["DETECTOR_CHECKPOINT_S", "DETECTOR_BACKLOG_WAIT_S"])
def test_a_negative_interval_is_refused_at_start(monkeypatch, name):
    from django.core.exceptions import ImproperlyConfigured

    from config.env import env_float

    monkeypatch.setenv(name, "-1")
    with pytest.raises(ImproperlyConfigured, match=name):
        env_float(name, 2.0, minimum=0.0)
