"""The one place that reaches into Faust's internals.

Faust's RocksDB store picks the partition database of a key from the task's *current
event* (``faust.streams.current_event()``), a context variable that ``take_events``
leaves unset for the batch it hands the agent. The detector agent writes each patient's
state while pointing that variable at the patient's own last event. Faust exposes no
public setter, so this wraps the private ``faust.streams._current_event``; the test in
tests/streams/test_faust_hooks.py fails if a Faust upgrade drops or renames it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import faust
from faust.streams import _current_event


@contextmanager
def as_current_event(event: faust.EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event inside the block, and restore the previous one."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
