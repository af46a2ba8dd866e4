"""The aggregates one ledger process holds between batches, at the version it last saved.

A batch takes what it needs from here instead of reading the store: an aggregate (at the
version this process wrote or read it) or the fact that the store held none under that id.
Taking hands the object over (it leaves the cache): the batch mutates it, and only a batch
that committed gives its aggregates back, so a failed or retried batch can never leave a
half-changed aggregate here.

Whatever a batch took from here is checked against the store once, just before the batch is
written (one query for all of it: `Batch.held_versions`); another process that wrote one of
them in between makes the batch start again from the store. Bounded: the least recently
used entries go first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Final
from uuid import UUID

from eventsourcing.domain import Aggregate


class _Absent:
    """The store held no aggregate under this id (when this process last looked)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
Held = Aggregate | _Absent


class HeldAggregates:
    def __init__(self, entries_max: int) -> None:
        assert entries_max > 0
        self._entries: OrderedDict[UUID, Held] = OrderedDict()
        self._entries_max = entries_max

    def take(self, aggregate_id: UUID) -> Held | None:
        """The held aggregate (or ABSENT), now owned by the caller; None if not held."""
        return self._entries.pop(aggregate_id, None)

    def hold(self, aggregates: Iterable[Aggregate]) -> None:
        """Keep aggregates that are exactly as stored (no pending events)."""
        for aggregate in aggregates:
            assert not aggregate.pending_events, "only what the store holds is held"
            self._put(aggregate.id, aggregate)

    def hold_absent(self, aggregate_ids: Iterable[UUID]) -> None:
        for aggregate_id in aggregate_ids:
            self._put(aggregate_id, ABSENT)

    def forget(self, aggregate_ids: Iterable[UUID]) -> None:
        for aggregate_id in aggregate_ids:
            self._entries.pop(aggregate_id, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _put(self, aggregate_id: UUID, held: Held) -> None:
        self._entries[aggregate_id] = held
        self._entries.move_to_end(aggregate_id)
        while len(self._entries) > self._entries_max:
            self._entries.popitem(last=False)


__all__ = ["ABSENT", "Held", "HeldAggregates"]
