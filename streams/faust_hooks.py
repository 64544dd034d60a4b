"""The one place that reaches into Faust's internals.

1. The current event. Faust's RocksDB store picks the partition database of a key from the task's *current
event* (``faust.streams.current_event()``), a context variable that ``take_events``
leaves unset for the batch it hands the agent. The detector agent writes each patient's
state while pointing that variable at the patient's own last event. Faust exposes no
public setter, so this wraps the private ``faust.streams._current_event``; the test in
tests/streams/test_faust_hooks.py fails if a Faust upgrade drops or renames it.

2. Holding messages back and reading a partition again (``hold_back``, ``rewind``,
``committed_offset``), for the offset ledger (streams/offsets.py): a take's messages
beyond a hole in their partition must not be acknowledged, and the consumer's own
bookkeeping must forget the offsets it took for a gap, or it would commit over them.
The same tests fail if the consumer's ``_committed_offset``, ``_acked``,
``_acked_index`` or ``_gap`` change.
"""

from __future__ import annotations

import weakref
from contextvars import Token
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import TP

_END = 1 << 62  # past any offset


class as_current_event:  # noqa: N801 - used as a function: ``with as_current_event(event):``
    """Make ``event`` Faust's current event inside the block, and restore the previous one.

    A class rather than a ``@contextmanager`` generator: the worker enters it once per
    patient in every take, and the generator machinery cost more than the write.
    """

    __slots__ = ("event", "token")

    def __init__(self, event: faust.EventT) -> None:
        self.event = event
        self.token: Token[Any] | None = None

    def __enter__(self) -> None:
        self.token = _current_event.set(weakref.ref(self.event))

    def __exit__(self, *exc: object) -> None:
        assert self.token is not None
        _current_event.reset(self.token)


def hold_back(events) -> None:
    """Mark the events' messages done without acknowledging them to the consumer.

    ``take_events`` acknowledges every event of a take on its way out, whether the agent
    judged it or not; a message marked here makes that a no-op, so its offset is never
    committed and the partition is read again from it. (The consumer also stops waiting
    for it at a rebalance or a stop: it drops acked messages from its unacked set.)
    """
    for event in events:
        event.message.acked = True


def committed_offset(consumer, tp: TP) -> int | None:
    """The committed offset Faust sought the partition to (None: none, or 0)."""
    return consumer._committed_offset.get(tp)


async def rewind(consumer, tp: TP, offset: int) -> None:
    """Read ``tp`` again from ``offset``: forget the acknowledgements and the gap Faust
    recorded from there on (it would commit over them), then seek."""
    gap = consumer._gap.get(tp)
    if gap is not None:
        gap.chop(offset, _END)
    acked = consumer._acked.get(tp)
    if acked:
        acked[:] = [o for o in acked if o < offset]
        index = consumer._acked_index[tp]
        index.difference_update([o for o in index if o >= offset])
    await consumer.seek(tp, offset)
