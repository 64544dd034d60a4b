"""Offset continuity of the samples partitions a detector worker owns.

Faust 0.15's consumer can hand the agent a partition's messages with a hole in them.
Right after a worker starts, Faust resumes the partitions, fetches, and only then seeks
them to their committed offsets; messages of the batch fetched before the seek are still
delivered while the seek moves the read position, and single messages went missing in
between (the kill test in tests/streams/test_worker.py saw one in about one start in
seven, and in one CI run a week of one patient's uploads). Faust then counts the missing
offsets as a "gap" it may commit over.

The processor cannot see such a hole: patients share a partition, and a patient's state
knows only the last offset it applied. The ledger can. Per partition it keeps the next
offset the worker must judge; a take is judged up to a partition's first hole, what lies
beyond the hole is held back (never acknowledged, so never committed), and the partition
is read again from the hole until the hole is filled. Messages fetched before such a
seek still arrive after it and can push Faust's read position past the hole again, so
the re-read is repeated every ``retry_s`` (by the worker's timer, not only when a take
comes). A hole still open after ``max_rewinds`` re-reads is taken as offsets the log
no longer holds (deleted by retention while the worker waited) and is passed over with
a warning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Split:
    """What a take may judge now: a flag per message, the holes, and the ledger's next
    offsets once the judged messages are done (``OffsetLedger.commit``)."""

    judge: list[bool]
    holes: dict[int, int] = field(default_factory=dict)  # partition -> first missing offset
    advanced: dict[int, int] = field(default_factory=dict)  # partition -> next offset to judge
    passed_over: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> [from, to)
    generation: int = 0  # the ledger's, when split: a rebalance since voids the commit


class OffsetLedger:
    """The next offset to judge in each owned partition, and the re-reads of holes."""

    def __init__(self, *, retry_s: float = 2.0, max_rewinds: int = 30,
                 clock=time.monotonic) -> None:
        self.next: dict[int, int] = {}
        self.holes: dict[int, int] = {}  # partition -> offset being read again
        self.generation = 0
        self.retry_s, self.max_rewinds, self.clock = retry_s, max_rewinds, clock
        self._rewinds: dict[int, tuple[int, float, int]] = {}  # partition -> (offset, when, count)

    def forget(self) -> None:
        """After a rebalance: the partitions start again from their committed offsets."""
        self.next.clear()
        self.holes.clear()
        self._rewinds.clear()
        self.generation += 1

    def begin(self, partition: int, committed: int | None) -> None:
        """The offset a newly owned partition starts from (None: from its first message)."""
        if partition not in self.next and committed is not None:
            self.next[partition] = committed

    def split(self, positions: list[tuple[int, int]]) -> Split:
        """Judge each (partition, offset) of a take up to its partition's first hole, and
        note the holes for ``due``.

        Offsets below the next one are re-deliveries: they are judged (the processor skips
        what a patient's state already holds).
        """
        by_partition: dict[int, set[int]] = {}
        for p, o in positions:
            by_partition.setdefault(p, set()).add(o)
        limit: dict[int, int] = {}  # partition -> first offset held back
        out = Split(judge=[], generation=self.generation)
        for p, offsets in by_partition.items():
            nxt = self.next.get(p, min(offsets))
            for o in sorted(offsets):
                if o < nxt:
                    continue
                if o > nxt:
                    rewound = self._rewinds.get(p)
                    if rewound is not None and rewound[0] == nxt and rewound[2] >= self.max_rewinds:
                        out.passed_over[p] = (nxt, o)  # no longer in the log: move on
                    else:
                        out.holes[p] = nxt
                        limit[p] = o
                        break
                nxt = o + 1
            out.advanced[p] = nxt
        out.judge = [o < limit.get(p, o + 1) for p, o in positions]
        self.holes.update(out.holes)
        return out

    def commit(self, split: Split) -> None:
        """The judged messages are done: the partitions move on (unless a rebalance began
        while they were judged: the partitions then start from their committed offsets)."""
        if split.generation != self.generation:
            return
        self.next.update(split.advanced)
        for p, nxt in split.advanced.items():
            if p in self.holes and nxt > self.holes[p]:  # filled (or passed over)
                del self.holes[p]
                self._rewinds.pop(p, None)

    def due(self) -> list[tuple[int, int]]:
        """The (partition, offset) holes to read again now; each is counted.

        A re-read takes a moment to arrive, and messages fetched before it still come in
        meanwhile: a hole is read again at most every ``retry_s``.
        """
        now = self.clock()
        out = []
        for p, offset in self.holes.items():
            last = self._rewinds.get(p)
            if last is None or last[0] != offset:
                self._rewinds[p] = (offset, now, 1)
            elif now - last[1] >= self.retry_s:
                self._rewinds[p] = (offset, now, last[2] + 1)
            else:
                continue
            out.append((p, offset))
        return out
