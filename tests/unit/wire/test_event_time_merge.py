"""The event-time merge of the consumer's partitions (consumers/event_time_merge.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.event_time_merge import EventTimeMerge, Fetch, merged

T0 = datetime(2026, 3, 10, tzinfo=UTC)
PARTITIONS = ("a", "b", "c")


def rank(partition: str) -> int:
    return PARTITIONS.index(partition)


# Per partition, its records in partition order: (event time in minutes or None, id).
streams_strategy = st.fixed_dictionaries({
    p: st.lists(st.one_of(st.none(), st.integers(0, 20)), max_size=12)
    .map(lambda times, p=p: [(None if m is None else T0 + timedelta(minutes=m), f"{p}{i}")
                             for i, m in enumerate(times)])
    for p in PARTITIONS
})


def expected_merge(streams: dict[str, list[tuple[datetime | None, str]]]) -> list[str]:
    """The specification, written differently from the merge: repeatedly, every timeless
    head goes, then the head of smallest (time, rank)."""
    rest = {p: list(items) for p, items in streams.items()}
    out: list[str] = []
    while any(rest.values()):
        for p in PARTITIONS:
            while rest[p] and rest[p][0][0] is None:
                out.append(rest[p].pop(0)[1])
        timed = [p for p in PARTITIONS if rest[p]]
        if timed:
            first = sorted(timed, key=lambda p: (rest[p][0][0], rank(p)))[0]
            out.append(rest[first].pop(0)[1])
    return out


def timed_ids(streams: dict[str, list[tuple[datetime | None, str]]]) -> set[str]:
    return {item for items in streams.values() for at, item in items if at is not None}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@given(streams_strategy, st.lists(st.tuples(st.sampled_from(PARTITIONS), st.integers(1, 5)),
                                  max_size=40))
def test_any_delivery_of_data_already_on_the_broker_releases_the_merge_order(
    streams: dict[str, list[tuple[datetime | None, str]]],
    deliveries: list[tuple[str, int]],
) -> None:
    """Records arrive in any chunking and interleaving of the partitions; a partition is
    lagging until all its records were delivered. Released: exactly the merge, each
    partition's order kept, nothing while a lagging partition is empty."""
    merge: EventTimeMerge[str, str] = EventTimeMerge(rank)
    for p in PARTITIONS:
        merge.assign(p)
    left = {p: list(items) for p, items in streams.items()}
    released: list[str] = []

    def fetch() -> dict[str, Fetch]:
        return {p: Fetch.LAGGING if left[p] else Fetch.CAUGHT_UP for p in PARTITIONS}

    # A record without a time goes as soon as it heads its partition, so where it lands
    # depends on delivery; the records with a time come out in one order whatever happens.
    timed = timed_ids(streams)
    whole = [item for item in expected_merge(streams) if item in timed]

    def deliver(p: str, n: int) -> None:
        chunk, left[p] = left[p][:n], left[p][n:]
        merge.add(p, chunk)
        released.extend(item for _p, item in merge.release(fetch()))
        # Never ahead of what a lagging partition may still bring: always a prefix.
        done = [item for item in released if item in timed]
        assert done == whole[:len(done)]

    for p, n in deliveries:
        deliver(p, n)
    for p in PARTITIONS:
        deliver(p, len(left[p]))
    assert [item for item in released if item in timed] == whole
    assert sorted(released) == sorted(item for items in streams.values() for _t, item in items)
    for p in PARTITIONS:
        mine = [item for item in released if item.startswith(p)]
        assert mine == [item for _t, item in streams[p]], "a partition's order is kept"


@given(streams_strategy)
def test_every_prefix_released_is_a_prefix_of_the_merge(
    streams: dict[str, list[tuple[datetime | None, str]]],
) -> None:
    """Delivered whole but one partition at a time: what is released at each step is a
    prefix of the final order (so a crash after any applied part resumes the same order)."""
    merge: EventTimeMerge[str, str] = EventTimeMerge(rank)
    for p in PARTITIONS:
        merge.assign(p)
    timed = timed_ids(streams)
    whole = [item for _p, item in merged(streams, rank) if item in timed]
    released: list[str] = []
    done: set[str] = set()
    for p in PARTITIONS:
        merge.add(p, streams[p])
        done.add(p)
        released += [i for _p, i in merge.release(
            {q: Fetch.CAUGHT_UP if q in done else Fetch.LAGGING for q in PARTITIONS})
            if i in timed]
        assert released == whole[:len(released)]
    assert released == whole
    assert [i for _p, i in merged(streams, rank) if i in timed] == [
        i for i in expected_merge(streams) if i in timed]


def test_an_empty_lagging_partition_blocks_and_a_caught_up_one_does_not() -> None:
    merge: EventTimeMerge[str, str] = EventTimeMerge(rank)
    for p in ("a", "b"):
        merge.assign(p)
    merge.add("a", [(T0, "a0")])
    assert merge.release({"a": Fetch.CAUGHT_UP, "b": Fetch.LAGGING}) == []
    assert merge.release({"a": Fetch.CAUGHT_UP, "b": Fetch.CAUGHT_UP}) == [("a", "a0")]


def test_a_record_without_event_time_goes_at_once_even_when_blocked() -> None:
    merge: EventTimeMerge[str, str] = EventTimeMerge(rank)
    for p in ("a", "b"):
        merge.assign(p)
    merge.add("a", [(None, "broken"), (T0, "a1")])
    assert merge.release({"b": Fetch.LAGGING}) == [("a", "broken")]
    assert merge.buffered("a") == 1


def test_an_unknown_end_offset_blocks_only_until_the_bound() -> None:
    clock = Clock()
    merge: EventTimeMerge[str, str] = EventTimeMerge(rank, fetch_wait_ms=5_000, clock=clock)
    for p in ("a", "b"):
        merge.assign(p)
    merge.add("a", [(T0, "a0")])
    assert merge.release({"a": Fetch.CAUGHT_UP}) == [], "b unknown: maybe lagging"
    clock.now = 4.9
    assert merge.release({"a": Fetch.CAUGHT_UP}) == []
    clock.now = 5.0
    assert merge.release({"a": Fetch.CAUGHT_UP}) == [("a", "a0")]


def test_a_lagging_partition_whose_records_do_not_come_blocks_only_until_the_bound() -> None:
    clock = Clock()
    merge: EventTimeMerge[str, str] = EventTimeMerge(rank, fetch_wait_ms=5_000, clock=clock)
    for p in ("a", "b"):
        merge.assign(p)
    merge.add("a", [(T0, "a0"), (T0 + timedelta(minutes=1), "a1")])
    merge.add("b", [(T0, "b0")])
    lagging = {"a": Fetch.CAUGHT_UP, "b": Fetch.LAGGING}
    clock.now = 10.0  # b's wait starts when it is found empty, not at its assignment
    assert merge.release(lagging) == [("a", "a0"), ("b", "b0")]
    assert merge.waiting_for == "b"
    clock.now = 14.9
    assert merge.release(lagging) == []
    clock.now = 15.0
    assert merge.release(lagging) == [("a", "a1")]


def test_the_idle_bound_waits_for_producers_then_goes_on() -> None:
    clock = Clock()
    merge: EventTimeMerge[str, str] = EventTimeMerge(rank, idle_ms=2_000, clock=clock)
    for p in ("a", "b"):
        merge.assign(p)
    merge.add("a", [(T0, "a0")])
    caught_up = {"a": Fetch.CAUGHT_UP, "b": Fetch.CAUGHT_UP}
    assert merge.release(caught_up) == []
    clock.now = 1.0
    merge.add("b", [(T0 - timedelta(seconds=1), "b0")])  # the late producer came in time
    assert merge.release(caught_up) == [("b", "b0")], "a0 waits: b is idle again"
    clock.now = 3.1
    assert merge.release(caught_up) == [("a", "a0")]


def test_revoke_drops_the_buffer_and_stops_blocking() -> None:
    merge: EventTimeMerge[str, str] = EventTimeMerge(rank)
    for p in ("a", "b"):
        merge.assign(p)
    merge.add("a", [(T0, "a0")])
    merge.add("b", [(T0, "b0")])
    merge.revoke("b")
    assert merge.partitions() == {"a"}
    assert merge.release({}) == [("a", "a0")]


def test_ties_go_by_rank() -> None:
    streams = {"c": [(T0, "c0")], "a": [(T0, "a0")], "b": [(T0, "b0")]}
    assert [i for _p, i in merged(streams, rank)] == ["a0", "b0", "c0"]


def test_negative_waits_are_refused() -> None:
    with pytest.raises(ValueError, match="waits must be >= 0"):
        EventTimeMerge(rank, idle_ms=-1)
