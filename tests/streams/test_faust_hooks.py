"""The one hook into Faust's internals (streams/faust_hooks.py): it must keep working
across Faust upgrades, since the RocksDB store picks a key's partition through it."""

from __future__ import annotations

import faust
from faust.streams import current_event
from faust.types.tuples import Message

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
