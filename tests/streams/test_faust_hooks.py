"""The hooks into Faust's internals (streams/faust_hooks.py): they must keep working
across Faust upgrades, since the RocksDB store picks a key's partition through the
current event, and the worker takes its batches through ``take_ready``."""

from __future__ import annotations

import asyncio
import time

import faust
from faust.streams import current_event
from faust.types.tuples import Message

from streams.faust_hooks import as_current_event, batch_ready, take_ready


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


def test_a_batch_is_ready_at_its_size_at_the_end_of_its_wait_or_once_its_oldest_event_is_of_age_and_nothing_is_queued():
    # the size bound and the plain window, as take_events has them
    assert batch_ready(n=100, max_=100, waited_s=0.0, oldest_age_s=0.0, within=0.25, nothing_waiting=False)
    assert batch_ready(n=1, max_=100, waited_s=0.25, oldest_age_s=0.0, within=0.25, nothing_waiting=False)
    assert not batch_ready(n=0, max_=100, waited_s=9.0, oldest_age_s=None, within=0.25, nothing_waiting=True)
    # events that waited out their window while the last batch was judged go at once...
    assert batch_ready(n=40, max_=100, waited_s=0.01, oldest_age_s=0.3, within=0.25, nothing_waiting=True)
    # ...unless more is waiting, in the stream's queue or in Kafka (a backlog keeps its window)
    assert not batch_ready(n=40, max_=100, waited_s=0.01, oldest_age_s=0.3, within=0.25, nothing_waiting=False)
    # a fresh event, or one without a record timestamp, waits for the window
    assert not batch_ready(n=1, max_=100, waited_s=0.01, oldest_age_s=0.1, within=0.25, nothing_waiting=True)
    assert not batch_ready(n=1, max_=100, waited_s=0.01, oldest_age_s=None, within=0.25, nothing_waiting=True)


def test_take_ready_hands_over_events_already_of_age_at_once_and_holds_a_fresh_one_for_its_window():
    # Faust's agent test context: the agent runs over an in-process channel, no broker
    app = faust.App("take-test", broker="kafka://127.0.0.1:9")
    batches: list[tuple[float, list[bytes]]] = []

    @app.agent()
    async def agent(stream):
        async for events in take_ready(stream, 100, within=0.5):
            batches.append((time.monotonic(), [e.value for e in events]))

    async def run() -> tuple[float, float]:
        async with agent.test_context() as a:
            t0 = time.monotonic()
            for i in range(3):  # produced 5 s ago: the window has passed
                await a.put(b"old%d" % i, timestamp=time.time() - 5)
            await asyncio.sleep(0.7)
            t1 = time.monotonic()
            await a.put(b"fresh", timestamp=time.time())
            await asyncio.sleep(0.9)
        return t0, t1

    t0, t1 = asyncio.run(run())
    *old, (t_fresh, fresh) = batches
    assert [v for _, b in old for v in b] == [b"old0", b"old1", b"old2"] and fresh == [b"fresh"]
    assert all(t - t0 < 0.25 for t, _ in old)  # not a window later
    assert 0.45 <= t_fresh - t1 < 0.85  # its own window, and not much more
