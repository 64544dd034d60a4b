"""The one place that reaches into Faust's internals.

1. The current event. Faust's RocksDB store picks the partition database of a key from the task's *current
event* (``faust.streams.current_event()``), a context variable that ``take_events``
leaves unset for the batch it hands the agent. The detector agent writes each patient's
state while pointing that variable at the patient's own last event. Faust exposes no
public setter, so this wraps the private ``faust.streams._current_event``; the test in
tests/streams/test_faust_hooks.py fails if a Faust upgrade drops or renames it.

2. The take loop (``take_ready``). ``Stream.take_events(max_, within)`` starts its
   window only once the previous batch is done, so events that arrived while that batch
   was being judged wait a further full window: with a window of ``w`` and a batch that
   takes ``P``, each cycle lasts ``w + P`` and, as the load grows, ``P`` grows as
   ``w * u / (1 - u)`` (``u`` the worker's utilisation). ``take_ready`` runs the window
   from the *oldest buffered event's production time* (the Kafka record timestamp): a
   batch is handed over once its oldest event is ``within`` old and nothing more is
   waiting (the stream's queue is empty and the batch holds, for each of its partitions,
   the offset just below the high watermark the consumer last saw), or ``within`` after
   the wait began (a backlog, where more is always waiting: the same batches as
   ``take_events``), or at ``max_`` events. Events are acked,
   as in ``take_events``, only after the agent is done with the batch. It uses the same
   private pieces ``take_events`` uses (``_enable_passive``, the stream's processors);
   the worker tests exercise it on a real broker.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable
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


def batch_ready(n: int, max_: int, waited_s: float, oldest_age_s: float | None, within: float,
                nothing_waiting: bool) -> bool:
    """Whether a take of ``n`` buffered events is handed to the agent now.

    ``waited_s``: since this take's wait began; ``oldest_age_s``: age of its oldest event
    by the record timestamp (None: the record has none, so only the wait counts)."""
    if n >= max_:
        return True
    if n == 0:
        return False
    if waited_s >= within:
        return True
    return oldest_age_s is not None and oldest_age_s >= within and nothing_waiting


async def take_ready(stream: faust.StreamT, max_: int, within: float,
                     clock: Callable[[], float] = time.time) -> AsyncIterator[list[faust.EventT]]:
    """Batches of at most ``max_`` events (module doc, 2). The events of a batch are acked
    after the agent's body for it returns, never before."""
    buffer: list[faust.EventT] = []
    newest: dict[Any, int] = {}  # partition -> the newest offset in the buffer
    changed = asyncio.Event()  # the buffer got its first event, or filled up
    consumed = asyncio.Event()
    consuming: asyncio.Future | None = None

    async def add(value: Any) -> Any:
        nonlocal consuming
        if consuming is not None:  # no event joins a batch the agent is working on
            try:
                await consuming
            finally:
                consuming = None
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_ready: an event arrived without Faust's current event")
        buffer.append(event)
        newest[event.message.tp] = event.message.offset
        if len(buffer) == 1 or len(buffer) >= max_:
            changed.set()
        if len(buffer) >= max_:
            consumed.clear()
            await stream.wait(consumed)  # type: ignore[arg-type]
        return value

    stream.enable_acks = False  # acked below, once the batch is done
    stream.add_processor(add)
    channel = aiter(stream.channel)
    stream._enable_passive(channel)  # type: ignore[attr-defined]  # noqa: SLF001
    queue = getattr(channel, "queue", None)

    def nothing_waiting() -> bool:
        if queue is not None and not queue.empty():
            return False
        for tp, offset in newest.items():
            try:
                hw = stream.app.consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - not known (yet): judged by the queue alone
                hw = None
            if hw is not None and offset + 1 < hw:
                return False
        return True

    loop = asyncio.get_running_loop()
    while not stream.should_stop:
        started = loop.time()
        while True:
            if not buffer:  # an idle stream: its window starts with its first event
                changed.clear()
                await stream.wait_for_stopped(changed)  # type: ignore[arg-type]
                if stream.should_stop:
                    return
                started = loop.time()
                continue
            waited = loop.time() - started
            ts = buffer[0].message.timestamp
            age = clock() - ts if ts else None
            if batch_ready(len(buffer), max_, waited, age, within, nothing_waiting()):
                break
            # look again when the window ends or the oldest event comes of age; once it
            # has, as soon as the events already queued are in the buffer
            timeout = within - waited
            timeout = min(timeout, 0.002 if age is None or age >= within else within - age)
            changed.clear()
            await stream.wait_for_stopped(changed, timeout=max(timeout, 0.0005))  # type: ignore[arg-type]
            if stream.should_stop:
                return
        consuming = loop.create_future()
        try:
            yield list(buffer)
        finally:
            events = list(buffer)
            buffer.clear()
            newest.clear()
            for event in events:
                await stream.ack(event)
            if not consuming.done():
                consuming.set_result(None)
            consumed.set()
