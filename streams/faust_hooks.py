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
from contextvars import Token
from typing import Any

import faust
from faust.streams import _current_event


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
