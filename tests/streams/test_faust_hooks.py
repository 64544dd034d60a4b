"""The one hook into Faust's internals (streams/faust_hooks.py): it must keep working
across Faust upgrades, since the RocksDB store picks a key's partition through it."""

from __future__ import annotations

import faust
from faust.streams import current_event
from faust.types.tuples import ConsumerMessage, Message

from streams.faust_hooks import as_current_event


def _event(app: faust.App, partition: int) -> faust.EventT:
    message = Message(topic="samples", partition=partition, offset=7, timestamp=0.0,
                      timestamp_type=0, headers=[], key=b"42", value=b"{}", checksum=None)
    return faust.Event(app, b"42", b"{}", {}, message)


def test_faust_sees_the_given_event_inside_the_block_and_the_previous_one_after_it():
    app = faust.App("hooks-test", broker="memory://")
    outer, inner = _event(app, 1), _event(app, 4)
    assert current_event() is None
    with as_current_event(outer):
        assert current_event() is outer
        with as_current_event(inner):
            assert current_event() is inner
            assert current_event().message.partition == 4
        assert current_event() is outer
    assert current_event() is None


def test_the_previous_event_comes_back_when_the_block_raises():
    app = faust.App("hooks-test", broker="memory://")
    try:
        with as_current_event(_event(app, 2)):
            raise KeyError("boom")
    except KeyError:
        pass
    assert current_event() is None


def test_a_held_back_message_is_never_acknowledged_to_the_consumer():
    from streams.faust_hooks import hold_back

    app = faust.App("hooks-test", broker="kafka://127.0.0.1:1")  # never connects
    consumer = app.consumer
    app.topics._acking_topics.add("samples")  # as for the agent's source topic
    held, done = (faust.Event(app, b"42", b"{}", {}, ConsumerMessage(
        topic="samples", partition=3, offset=offset, timestamp=0.0, timestamp_type=0, headers=[],
        key=b"42", value=b"{}", checksum=None)) for offset in (8, 7))
    for e in (held, done):
        e.message.incref(1)
    hold_back([held])
    assert held.ack() is False  # take_events' own ack on the way out: a no-op now
    assert done.ack() is True
    assert consumer._acked[held.message.tp] == [7]  # only the judged one may be committed


def test_rewind_forgets_the_acks_and_the_gap_from_the_offset_on_and_seeks():
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from faust.types import TP

    from streams.faust_hooks import committed_offset, rewind

    app = faust.App("hooks-test", broker="kafka://127.0.0.1:1")  # never connects
    consumer = app.consumer
    tp = TP("samples", 3)
    consumer._committed_offset[tp] = 990
    assert committed_offset(consumer, tp) == 990
    consumer._acked[tp].extend([995, 996, 999])
    consumer._acked_index[tp].update([995, 996, 999])
    consumer._gap[tp].addi(997, 1001)
    sought = []

    async def seek(partition, offset):
        sought.append((partition, offset))

    consumer.seek = seek  # the seek itself is Faust's public Consumer.seek
    # a loop of its own in a thread of its own: an earlier test may leave this thread's loop running
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, rewind(consumer, tp, 997)).result()
    assert consumer._acked[tp] == [995, 996] and consumer._acked_index[tp] == {995, 996}
    assert not consumer._gap[tp]
    assert sought == [(tp, 997)]
