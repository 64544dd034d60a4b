"""Fixtures for the detector tests: simulated patients with known episodes."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import pytest

START = datetime(2026, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=4)
def _cohort(n: int, days: int, seed: int):
    from ingest.simulator import simulate_cohort

    return simulate_cohort(n, days, start=START, seed=seed)


@pytest.fixture(scope="session")
def cohort():
    """20 simulated patients over 30 days (every fourth one a control)."""
    return _cohort(20, 30, 7)


def patient_with(cohort, kind: str) -> int:
    ep = cohort.episodes
    return int(ep.loc[ep["kind"] == kind, "patient"].iloc[0])


def read_topic(topic: str, at_least: int, timeout_s: float = 20.0) -> list:
    """Every message of a topic, read without a consumer group (no join to wait for)."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    from lib import kafka

    c = KafkaConsumer(bootstrap_servers=kafka.bootstrap(), group_id=None,
                      enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        deadline = time.monotonic() + timeout_s
        parts = c.partitions_for_topic(topic)
        while not parts and time.monotonic() < deadline:  # not created yet
            time.sleep(0.5)
            c.topics()  # refreshes the metadata
            parts = c.partitions_for_topic(topic)
        if not parts:
            return []
        c.assign([TopicPartition(topic, p) for p in parts])
        c.seek_to_beginning()
        out: list = []
        while len(out) < at_least and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=200).values():
                out.extend(msgs)
        return out
    finally:
        c.close()
