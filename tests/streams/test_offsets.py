"""The offset ledger (streams/offsets.py): a take is judged up to the first hole in each
partition, and what lies beyond it is held back until the partition is read again."""

from __future__ import annotations

from streams.offsets import OffsetLedger


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_continuous_take_is_judged_whole_and_moves_the_partitions_on():
    ledger = OffsetLedger()
    ledger.begin(0, 10)
    split = ledger.split([(0, 10), (1, 4), (0, 11), (1, 5), (0, 12)])
    assert split.judge == [True] * 5 and not split.holes
    ledger.commit(split)
    assert ledger.next == {0: 13, 1: 6}  # partition 1 had no committed offset: its first message


def test_a_missing_offset_holds_back_the_rest_of_its_partition_only():
    ledger = OffsetLedger()
    ledger.begin(3, 995)
    positions = [(3, 995), (3, 996), (2, 50), (3, 998), (2, 51), (3, 999)]
    split = ledger.split(positions)
    assert split.holes == {3: 997}
    assert split.judge == [True, True, True, False, True, False]
    ledger.commit(split)
    assert ledger.next == {3: 997, 2: 52}


def test_a_take_that_starts_past_the_committed_offset_is_held_back_whole():
    # the CI failure: a week of one patient's uploads (offsets 1503..2184) never delivered
    ledger = OffsetLedger()
    ledger.begin(4, 1503)
    split = ledger.split([(4, 2185), (4, 2186)])
    assert split.judge == [False, False] and split.holes == {4: 1503}
    ledger.commit(split)
    assert ledger.next == {4: 1503}


def test_redelivered_and_doubled_offsets_are_judged_again_for_the_processor_to_skip():
    ledger = OffsetLedger()
    ledger.begin(5, 100)
    ledger.commit(ledger.split([(5, 100), (5, 101)]))
    split = ledger.split([(5, 99), (5, 101), (5, 101), (5, 102)])
    assert split.judge == [True, True, True, True] and not split.holes
    ledger.commit(split)
    assert ledger.next == {5: 103}


def test_the_read_again_fills_the_hole():
    ledger = OffsetLedger()
    ledger.begin(1, 0)
    first = ledger.split([(1, 0), (1, 1), (1, 3)])
    ledger.commit(first)
    assert first.holes == {1: 2} and ledger.holes == {1: 2} and ledger.due() == [(1, 2)]
    again = ledger.split([(1, 2), (1, 3), (1, 4)])
    assert again.judge == [True, True, True] and not again.holes
    ledger.commit(again)
    assert ledger.next == {1: 5} and not ledger.holes and ledger.due() == []


def test_an_open_hole_is_read_again_every_retry_interval_even_without_takes():
    # messages fetched before the seek can push the read position past the hole again;
    # then no take comes for the partition, and only the worker's timer reads it again
    clock = Clock()
    ledger = OffsetLedger(retry_s=2.0, clock=clock)
    ledger.begin(0, 5)
    ledger.commit(ledger.split([(0, 5), (0, 6), (0, 8)]))
    assert ledger.due() == [(0, 7)]
    clock.now = 1.0
    assert ledger.due() == []  # a re-read takes a moment
    clock.now = 2.5
    assert ledger.due() == [(0, 7)]
    ledger.commit(ledger.split([(1, 3)]))  # another partition's take leaves the hole open
    assert ledger.holes == {0: 7}


def test_a_hole_the_log_does_not_fill_is_passed_over_after_the_last_read_again():
    clock = Clock()
    ledger = OffsetLedger(retry_s=1.0, max_rewinds=3, clock=clock)
    ledger.begin(2, 40)
    for _ in range(3):
        split = ledger.split([(2, 42), (2, 43)])
        assert split.holes == {2: 40} and split.judge == [False, False]
        assert ledger.due() == [(2, 40)]
        ledger.commit(split)
        clock.now += 1.5
    split = ledger.split([(2, 42), (2, 43)])
    assert not split.holes and split.passed_over == {2: (40, 42)} and split.judge == [True, True]
    ledger.commit(split)
    assert ledger.next == {2: 44} and not ledger.holes


def test_a_rebalance_forgets_the_partitions():
    ledger = OffsetLedger()
    ledger.begin(0, 5)
    ledger.split([(0, 7)])
    ledger.forget()
    ledger.begin(0, 9)
    assert ledger.next == {0: 9} and not ledger.holes


def test_a_take_that_ends_after_a_rebalance_began_moves_nothing_on():
    ledger = OffsetLedger()
    ledger.begin(0, 5)
    split = ledger.split([(0, 5), (0, 6)])
    ledger.forget()  # partitions revoked while the take was being judged
    ledger.commit(split)
    assert ledger.next == {}
