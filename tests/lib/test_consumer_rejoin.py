"""A unit test of one step of the consumer loop, with a fake consumer (the real broker
cannot be made to hold a group in a rebalance on demand): commits that keep meeting a
rebalance make the loop leave the group and join again with a new consumer, and what
came since the last commit is read again rather than committed."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from kafka import TopicPartition
from kafka.errors import RebalanceInProgressError

from lib import consumer as consumer_module
from lib.consumer import ConsumerLoop

TP = TopicPartition("t", 0)


class StuckConsumer:
    """Hands out one message, then every commit answers RebalanceInProgressError."""

    def __init__(self, stuck: bool) -> None:
        self.stuck = stuck
        self.sent = False
        self.closed = False
        self.commits: list[dict] = []

    def poll(self, timeout_ms, max_records):
        if self.sent:
            return {}
        self.sent = True
        return {TP: [SimpleNamespace(offset=7, value=b"x", headers=None)]}

    def commit(self, offsets):
        if self.stuck:
            raise RebalanceInProgressError("rebalancing")
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def assignment(self):
        return set()

    def close(self, autocommit=True):
        self.closed = True


class Loop(ConsumerLoop):
    commit_every_s = 0.0
    stuck_rebalance_s = 0.3

    def parse(self, value):
        return value

    def write(self, items):
        self.written_items = [*getattr(self, "written_items", []), *items]
        return {}


def test_commits_stuck_in_a_rebalance_make_the_loop_join_again_and_read_from_the_committed_offset(
        monkeypatch, caplog):
    made: list[StuckConsumer] = []

    def new_consumer(group_id, topics, **_kw):
        made.append(StuckConsumer(stuck=not made))  # the first one is stuck, the next is not
        return made[-1]

    monkeypatch.setattr(consumer_module.kafka, "ensure_topics", lambda **_kw: None)
    monkeypatch.setattr(consumer_module.kafka, "consumer", new_consumer)
    loop = Loop(topic="t", group_id="g", batch_messages=1, batch_seconds=0.0)
    with caplog.at_level(logging.WARNING, logger="lib.consumer"):
        loop.run(max_seconds=1.5)
    assert len(made) == 2 and made[0].closed and made[1].closed
    assert made[0].commits == []  # never committed while stuck
    # the message was read again by the new consumer, written again (idempotent), then committed
    assert loop.written_items == [b"x", b"x"]
    assert made[1].commits == [{TP: 8}]
    assert any("joining it again" in r.getMessage() for r in caplog.records)


def test_a_short_rebalance_does_not_make_the_loop_join_again(monkeypatch):
    made: list[StuckConsumer] = []

    class Brief(StuckConsumer):
        def commit(self, offsets):
            if len(self.commits) == 0 and not getattr(self, "refused", False):
                self.refused = True
                raise RebalanceInProgressError("rebalancing")
            super().commit(offsets)

    monkeypatch.setattr(consumer_module.kafka, "ensure_topics", lambda **_kw: None)
    monkeypatch.setattr(consumer_module.kafka, "consumer",
                        lambda *a, **k: made.append(Brief(stuck=False)) or made[-1])
    loop = Loop(topic="t", group_id="g", batch_messages=1, batch_seconds=0.0)
    loop.run(max_seconds=1.0)
    assert len(made) == 1 and made[0].commits == [{TP: 8}]
