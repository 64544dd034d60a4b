"""The worker's step without Faust: the processor's bookkeeping.

The worker itself, on the real broker, is in test_worker.py; these pin the rule its
exactly-once argument rests on: a re-delivered message is never applied twice.
"""

from __future__ import annotations

import orjson
import pytest

from streams.processor import RECENT_BATCHES, DetectorProcessor, PatientState, batch_digest
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
    assert set(out.states) == {b"7"}
    table.update(out.states)
    assert PatientState.loads(table[b"7"]).offset == 11

    # a restarted worker: nothing cached, the table's state; offsets 10-11 come again
    again = DetectorProcessor(lateness_s=600)
    out = again.process([(b"7", 10, msg(7, 0)), (b"7", 11, msg(7, 1)), (b"7", 12, msg(7, 2))], table.get)
    assert again.stats.skipped_redelivered == 2
    assert again.stats.samples == 15
    assert PatientState.loads(out.states[b"7"]).offset == 12


def test_a_batch_of_only_redelivered_messages_changes_nothing():
    proc = DetectorProcessor(lateness_s=600)
    table: dict[bytes, bytes] = {}
    table.update(proc.process([(b"3", 5, msg(3, 0))], table.get).states)
    proc.forget()
    out = proc.process([(b"3", 5, msg(3, 0))], table.get)
    assert out.states == {} and out.alerts == []


def test_a_batch_that_reached_the_topic_twice_under_two_offsets_is_applied_once():
    """A produce that timed out had landed, and the phone re-sent the batch: two
    messages, one batch id. The second is dropped, before and after a restart."""
    proc = DetectorProcessor(lateness_s=600)
    table: dict[bytes, bytes] = {}
    table.update(proc.process([(b"7", 10, msg(7, 0)), (b"7", 11, msg(7, 0))], table.get).states)
    assert proc.stats.samples == 15 and proc.stats.skipped_repeated_batches == 1
    assert PatientState.loads(table[b"7"]).offset == 11  # the repeat's offset is done with too

    again = DetectorProcessor(lateness_s=600)  # restarted: only the changelog's state
    out = again.process([(b"7", 12, msg(7, 0)), (b"7", 13, msg(7, 1))], table.get)
    assert again.stats.skipped_repeated_batches == 1
    assert again.stats.samples == 15
    assert PatientState.loads(out.states[b"7"]).offset == 13


def test_the_state_remembers_only_the_latest_batch_ids_and_a_state_from_before_loads():
    proc = DetectorProcessor(lateness_s=600)
    table: dict[bytes, bytes] = {}
    for i in range(RECENT_BATCHES + 1):
        table.update(proc.process([(b"7", i, msg(7, i))], table.get).states)
    state = PatientState.loads(table[b"7"])
    assert not state.seen(batch_digest("b7-0")) and state.seen(batch_digest(f"b7-{RECENT_BATCHES}"))
    assert len(state.batches) == RECENT_BATCHES * 6

    del state.__dict__["batches"]  # as pickled before the field existed
    old = PatientState.loads(state.dumps())
    assert old.batches == b"" and not old.seen(batch_digest("b7-1"))


def test_an_unreadable_message_is_counted_and_the_rest_of_the_batch_applied():
    proc = DetectorProcessor(lateness_s=600)
    out = proc.process([(b"4", 1, b"not json"), (b"4", 2, msg(5, 0)), (b"4", 3, msg(4, 1))], {}.get)
    assert proc.stats.unreadable == 2  # not JSON; another patient's message under key 4
    assert proc.stats.samples == 15 and set(out.states) == {b"4"}


@pytest.mark.parametrize(("raw", "reason"), [("-1", "below the minimum"), ("nan", "not a number"),
                                             ("soon", "not a number")])
def test_a_bad_take_window_is_refused_at_start(monkeypatch, raw, reason):
    from django.core.exceptions import ImproperlyConfigured

    from lib.env import env_float

    monkeypatch.setenv("DETECTOR_TAKE_WITHIN_S", raw)
    with pytest.raises(ImproperlyConfigured, match=f"DETECTOR_TAKE_WITHIN_S.*{reason}"):
        env_float("DETECTOR_TAKE_WITHIN_S", 0.5, minimum=0.0)


def test_a_state_blob_uses_the_frozen_dictionary_and_those_written_before_still_load(monkeypatch):
    import pickle
    import zlib

    import lz4.block

    from streams.detectors.base import _MinuteBins
    from streams.processor import STATE_LZ4, STATE_ZDICT

    # the dictionary is part of the stored format: editing it would make every stored
    # state unreadable, so its checksum is pinned here
    assert zlib.adler32(STATE_ZDICT) == 2334897762
    proc = DetectorProcessor(lateness_s=600)
    out = proc.process([(b"7", i, msg(7, i)) for i in range(40)], {}.get)
    blob = out.states[b"7"]
    assert blob[:1] == STATE_LZ4
    state = PatientState.loads(blob)
    assert state.offset == 39
    plain = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(blob) < len(lz4.block.compress(plain)) + 1  # the dictionary earns its keep
    with pytest.raises(lz4.block.LZ4BlockError):
        lz4.block.decompress(blob[1:])  # it cannot be read without the dictionary

    def same(old: PatientState) -> None:
        assert old.offset == 39 and old.monitor.watermark_ == state.monitor.watermark_
        assert pickle.dumps(old, protocol=pickle.HIGHEST_PROTOCOL) == plain

    # the formats written before: zlib with the dictionary, zlib without it, a bare pickle
    c = zlib.compressobj(6, zdict=STATE_ZDICT)
    same(PatientState.loads(c.compress(plain) + c.flush()))
    same(PatientState.loads(zlib.compress(plain, 6)))
    same(PatientState.loads(plain))
    # minute bins pickled as arrays (before they were stored as bytes)
    monkeypatch.setattr(_MinuteBins, "__getstate__",
                        lambda b: (b.origin, b.hr_sum, b.hr_n, b.steps, b.activity))
    as_arrays = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    monkeypatch.undo()
    assert as_arrays != plain
    same(PatientState.loads(as_arrays))


def high_run(pid: int, i: int) -> bytes:
    """An upload of 15 minutes at 132 bpm without steps (a high heart rate at rest)."""
    run = [{"metric": "heart_rate", "time": T0 + (i * 15 + m) * 60_000, "value": 132.0} for m in range(15)]
    return upload_message(pid, f"h{pid}-{i}", run)


def body(alert) -> dict:
    """An alert message without its emission time (wall clock)."""
    out = orjson.loads(alert.dumps())
    del out["emitted_ms"]
    return out


def test_judge_gives_the_alerts_before_any_state_is_encoded_and_dump_gives_process_s_blobs():
    batches = [[(b"5", 0, msg(5, 0)), (b"6", 1, high_run(6, 0))],
               [(b"6", 2, high_run(6, 1)), (b"6", 3, msg(6, 2))],
               [(b"5", 4, msg(5, 1))]]
    one, two = DetectorProcessor(lateness_s=60), DetectorProcessor(lateness_s=60)
    t1: dict[bytes, bytes] = {}
    t2: dict[bytes, bytes] = {}
    alerts = []
    for batch in batches:
        judged = one.judge(batch, t1.get)
        assert judged.states == {}  # nothing encoded yet
        assert all(isinstance(s, PatientState) for s in judged.changed.values())
        alerts += [body(a) for a in judged.alerts]
        keys = set(judged.changed)
        t1.update(one.dump(judged).states)
        assert set(judged.states) == keys and judged.changed == {}
        whole = two.process(batch, t2.get)
        t2.update(whole.states)
        assert judged.states == whole.states
        assert [body(a) for a in whole.alerts] == [body(a) for a in judged.alerts]
    assert alerts, "the high run at rest raised an alert"
    assert t1 == t2

