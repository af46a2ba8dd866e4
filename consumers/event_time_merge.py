"""The event-time merge of a consumer's partitions: Kafka Streams' rule (KIP-695,
`max.task.idle.ms`) without Kafka.

Kafka orders records per partition only; the ledger's end state depends on the order of the
topics (a wallet session read before its top-up starts on an empty wallet; receipts are
numbered as sessions settle). So decoded records are buffered per partition and released by
a k-way merge of the partitions' heads, smallest event time first: each partition's own
order is kept (a partition is never reordered, its positions keep growing), and across
partitions the day comes out as it happened.

A head is released only when every other partition can be compared with it: it has a record
buffered, or it is known to be caught up (the client's fetch position is at its end offset).
A partition with known lag and nothing buffered blocks the merge: its data is on the broker,
the next fetch brings it. A partition whose end offset is not known yet (no fetch answered
since it was assigned) counts as lagging. Either holds the others back for at most
`fetch_wait_ms` (None: until its records come), so a partition whose records do not come
(a leader that does not answer, a fetcher that does not bring them) cannot stall the
others forever: after the bound they go on, and its records apply when they come.
`idle_ms` (default 0: never wait for records not yet produced, Kafka Streams' default)
keeps a caught-up, empty partition blocking that long after it became so, for producers
that are late.

A record without an event time (it failed to decode: it is only dead-lettered) is released
as soon as it is its partition's head. Ties in event time go to the partition of the
smaller `tie_break` (the consumer ranks topics the way `ledger simulate` writes a day).

Pure and single-threaded: the caller passes the fetch state of each partition and the
clock; no Kafka here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, Generic, TypeVar

P = TypeVar("P", bound=Hashable)
T = TypeVar("T")


class Fetch(Enum):
    """What the client knows of a partition's fetch position against its end offset."""

    CAUGHT_UP = "caught up"
    LAGGING = "lagging"
    UNKNOWN = "unknown"


class EventTimeMerge(Generic[P, T]):
    """Buffers per partition; `release` yields what the merge may apply now, in order."""

    def __init__(
        self, tie_break: Callable[[P], Any], idle_ms: int = 0,
        fetch_wait_ms: int | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle_ms < 0 or (fetch_wait_ms is not None and fetch_wait_ms < 0):
            raise ValueError(f"waits must be >= 0 ms: idle {idle_ms}, fetch {fetch_wait_ms}")
        self._tie_break = tie_break
        self._idle_s = idle_ms / 1000
        self._fetch_wait_s = None if fetch_wait_ms is None else fetch_wait_ms / 1000
        self._clock = clock
        self._buffers: dict[P, deque[tuple[datetime | None, T]]] = {}
        # Since when each empty partition that is not caught up has held the others back.
        self._waiting_since: dict[P, float] = {}
        self._idle_since: dict[P, float] = {}
        # The partition the last `release` stopped at (empty, and lagging, unknown or idle).
        self.waiting_for: P | None = None

    # ------------------------------------------------------------ partitions
    def assign(self, partition: P) -> None:
        """A partition (newly assigned, or sought again): an empty buffer, nothing known."""
        self._buffers[partition] = deque()
        self._waiting_since[partition] = self._clock()  # unknown from its assignment on
        self._idle_since.pop(partition, None)

    def revoke(self, partition: P) -> None:
        """Forget a partition and drop what it buffered (it is re-read from its position)."""
        self._buffers.pop(partition, None)
        self._waiting_since.pop(partition, None)
        self._idle_since.pop(partition, None)

    def partitions(self) -> set[P]:
        return set(self._buffers)

    def buffered(self, partition: P) -> int:
        return len(self._buffers.get(partition, ()))

    def add(self, partition: P, items: Iterable[tuple[datetime | None, T]]) -> None:
        """Records of an assigned partition, in its order, each with its event time."""
        buffer = self._buffers[partition]
        buffer.extend(items)
        if buffer:
            self._idle_since.pop(partition, None)
            self._waiting_since.pop(partition, None)

    # ------------------------------------------------------------ the merge
    def release(self, fetch: Mapping[P, Fetch]) -> list[tuple[P, T]]:
        """Everything the merge can release now, in the order to apply it. `fetch` is each
        partition's state as the client reports it (missing: unknown)."""
        released: list[tuple[P, T]] = []
        now = self._clock()
        self.waiting_for = None
        while True:
            self._release_timeless(released)
            heads: list[tuple[tuple[datetime, Any], P]] = []
            for partition, buffer in self._buffers.items():
                if buffer:
                    at = buffer[0][0]
                    assert at is not None  # timeless heads were released above
                    heads.append(((at, self._tie_break(partition)), partition))
                elif self._blocks(partition, fetch.get(partition, Fetch.UNKNOWN), now):
                    self.waiting_for = partition
                    return released
            if not heads:
                return released
            _key, first = min(heads, key=lambda head: head[0])
            released.append((first, self._buffers[first].popleft()[1]))

    def _release_timeless(self, released: list[tuple[P, T]]) -> None:
        for partition, buffer in self._buffers.items():
            while buffer and buffer[0][0] is None:
                released.append((partition, buffer.popleft()[1]))

    def _blocks(self, partition: P, fetch: Fetch, now: float) -> bool:
        """Whether an empty partition keeps the others waiting."""
        if fetch is not Fetch.CAUGHT_UP:
            waiting = self._waiting_since.setdefault(partition, now)
            return self._fetch_wait_s is None or now - waiting < self._fetch_wait_s
        self._waiting_since.pop(partition, None)
        since = self._idle_since.setdefault(partition, now)
        return now - since < self._idle_s


def merged(streams: Mapping[P, Iterable[tuple[datetime | None, T]]],
           tie_break: Callable[[P], Any]) -> list[tuple[P, T]]:
    """The merge of complete streams (every partition caught up): the order a consumer that
    finds all of them on the broker applies them in."""
    merge: EventTimeMerge[P, T] = EventTimeMerge(tie_break)
    for partition, items in streams.items():
        merge.assign(partition)
        merge.add(partition, items)
    return merge.release(dict.fromkeys(streams, Fetch.CAUGHT_UP))


__all__ = ["EventTimeMerge", "Fetch", "merged"]
