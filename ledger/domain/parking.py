"""Messages of one tenant that wait for what they need (docs/reliability.md, "Parking").

A message whose prerequisite has not arrived (its tenant, driver, location, tariff, the
request a PSP result answers...) is parked here, in the same transaction as the batch it
came in, so it survives a crash and its Kafka offset can move on. Messages are kept in
arrival order in lanes, one per message key (a session, a wallet, a PSP request): a lane's
first message waits for what it needs (`awaits`), the others of the lane wait behind it, so
a session's or a wallet's messages are applied in the order they came.

The lot is indexed so that its cost does not grow with what it holds: lanes by what their
first message awaits (a message that brings it finds its waiters directly), by deadline per
tenant (the bounded wait finds the due lanes without a scan), parked event ids (a copy is a
duplicate) and parked positions (a release names them). The indexes are state derived from
the same two events as before (`Parked`, `Released`: their shape is unchanged, so an old log
replays to the same lot); a snapshot taken before them (class version 1: `entries` and
`lane_sizes`) is upcast by parking its entries again.
"""

from __future__ import annotations

import json
from bisect import bisect_left, insort
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id

# A lane whose first message waits for its tenant expires on any tenant's time: its deadline
# is filed under this scope instead of a tenant id.
ANY_TENANT = "*"
TENANT_AWAITS_PREFIX = "tenant:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ParkedEntry(TypedDict):
    """One parked message: enough to apply it later, and to dead-letter it as it came."""

    source: str
    position: int
    lane: str  # the message key (or its event id when it has none): its order is kept
    key: str | None  # the message key as it came
    tenant_id: str
    event_id: str
    type_name: str
    payload: dict[str, Any]  # the message's JSON form (`model_dump(mode="json")`)
    raw: str  # what came from the transport, for a dead letter and its redrive
    awaits: str  # e.g. "driver:cpo-de/d-17"; for a message behind another: the same
    reason: str  # what the handler said was missing
    occurred_at: str  # ISO 8601: the message's event time, for the bounded wait


class ParkingLot(Aggregate):
    """The parked messages of every tenant (also of a tenant not configured yet)."""

    # 2: lanes and their indexes instead of one list of entries (see `upcast_v1_v2`).
    class_version = 2
    # Set by `_empty_indexes` (also for an upcast snapshot); JSON types only, string keys,
    # so a snapshot reads back the same.
    lanes: dict[str, dict[str, Any]]  # lane -> {"seq": opening order, "entries": [...]}
    next_seq: int
    awaiting: dict[str, list[str]]  # awaits -> lanes whose first entry waits for it
    deadlines: dict[str, list[list[Any]]]  # scope -> sorted [[head's time in us, seq, lane]]
    lane_at: dict[str, str]  # _place(source, position) -> lane
    event_counts: dict[str, int]  # _event_key(tenant, event id) -> entries with it

    @staticmethod
    def create_id(tenant_id: str) -> UUID:
        return natural_id("parking_lot", tenant_id)

    @event("Opened")
    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        _empty_indexes(self.__dict__)

    @event("Parked")
    def park(self, entry: ParkedEntry) -> None:
        self._add(entry)

    @event("Released")
    def release(self, positions: list[list[Any]], outcome: str) -> None:
        """The entries at these [source, position] left the lot: re-applied, or their wait
        ran out (`outcome` "expired")."""
        gone: dict[str, set[str]] = {}
        for source, position in positions:
            place = _place(str(source), int(position))
            lane = self.lane_at.get(place)
            if lane is not None:
                gone.setdefault(lane, set()).add(place)
        for lane, places in gone.items():
            entries = self.lanes[lane]["entries"]
            self._drop_lane(lane)
            for entry in entries:  # what stays of a lane (never the case today) parks again
                if _place(entry["source"], entry["position"]) not in places:
                    self._add(entry)

    # ------------------------------------------------------------------ queries
    @property
    def entries(self) -> list[ParkedEntry]:
        """Every parked entry, lane by lane in the order the lanes opened."""
        return [e for lane in self.lanes.values() for e in lane["entries"]]

    def size(self) -> int:
        """How many messages are parked. (Not `__len__`: an empty lot must stay truthy, as
        eventsourcing tells an aggregate from its class by truth.)"""
        return len(self.lane_at)

    def lane(self, lane: str) -> list[ParkedEntry]:
        found = self.lanes.get(lane)
        return list(found["entries"]) if found is not None else []

    def has_lane(self, lane: str) -> bool:
        return lane in self.lanes

    def heads(self) -> list[ParkedEntry]:
        """The first entry of every lane, in arrival order: the ones waiting for something."""
        return [lane["entries"][0] for lane in self.lanes.values()]

    def arrival(self, head: ParkedEntry) -> int:
        """Where the lane of `head` stands in the order the lanes opened."""
        return int(self.lanes[head["lane"]]["seq"])

    def waiting_for(self, awaits: str) -> list[ParkedEntry]:
        """The first entries of the lanes waiting for `awaits`, in arrival order."""
        return [self.lanes[lane]["entries"][0] for lane in self.awaiting.get(awaits, [])]

    def due(self, scopes: Iterable[str], before: datetime) -> list[ParkedEntry]:
        """The first entries of the lanes of `scopes` (tenant ids, ANY_TENANT) whose first
        message occurred before `before`, in arrival order."""
        found: list[list[Any]] = []
        for scope in scopes:
            filed = self.deadlines.get(scope, [])
            found.extend(filed[:bisect_left(filed, [_micros(before)])])
        return [self.lanes[lane]["entries"][0] for _at, _seq, lane in sorted(
            found, key=lambda filed_lane: int(filed_lane[1]))]

    def any_due(self, scopes: Iterable[str], before: datetime) -> bool:
        """Whether `due(scopes, before)` has any: one look per scope."""
        cut = [_micros(before)]
        return any(filed[0] < cut for scope in scopes if (filed := self.deadlines.get(scope)))

    def holds_event(self, tenant_id: str, event_id: str) -> bool:
        return _event_key(tenant_id, event_id) in self.event_counts

    # ------------------------------------------------------------------ state
    def _add(self, entry: ParkedEntry) -> None:
        lane_name = entry["lane"]
        lane = self.lanes.get(lane_name)
        if lane is None:
            lane = {"seq": self.next_seq, "entries": []}
            self.next_seq += 1
            self.lanes[lane_name] = lane
            self.awaiting.setdefault(entry["awaits"], []).append(lane_name)
            insort(self.deadlines.setdefault(_scope(entry), []),
                   [_micros(datetime.fromisoformat(entry["occurred_at"])), lane["seq"],
                    lane_name])
        lane["entries"].append(entry)
        self.lane_at[_place(entry["source"], entry["position"])] = lane_name
        key = _event_key(entry["tenant_id"], entry["event_id"])
        self.event_counts[key] = self.event_counts.get(key, 0) + 1

    def _drop_lane(self, lane_name: str) -> None:
        lane = self.lanes.pop(lane_name)
        head = lane["entries"][0]
        waiters = self.awaiting[head["awaits"]]
        waiters.remove(lane_name)
        if not waiters:
            del self.awaiting[head["awaits"]]
        scope = _scope(head)
        filed = self.deadlines[scope]
        at = bisect_left(filed, [_micros(datetime.fromisoformat(head["occurred_at"])),
                                 lane["seq"], lane_name])
        del filed[at]
        if not filed:
            del self.deadlines[scope]
        for entry in lane["entries"]:
            del self.lane_at[_place(entry["source"], entry["position"])]
            key = _event_key(entry["tenant_id"], entry["event_id"])
            if self.event_counts[key] == 1:
                del self.event_counts[key]
            else:
                self.event_counts[key] -= 1

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A snapshot of the lot as one list of entries: the same entries, parked again in
        their order, give the lanes and indexes."""
        entries: list[ParkedEntry] = state.pop("entries")
        state.pop("lane_sizes", None)
        lot = object.__new__(ParkingLot)
        _empty_indexes(lot.__dict__)
        for entry in entries:
            lot._add(entry)
        state.update(vars(lot))


def _empty_indexes(state: dict[str, Any]) -> None:
    state.update(lanes={}, next_seq=0, awaiting={}, deadlines={}, lane_at={}, event_counts={})


def _scope(head: ParkedEntry) -> str:
    return ANY_TENANT if head["awaits"].startswith(TENANT_AWAITS_PREFIX) else head["tenant_id"]


def _place(source: str, position: int) -> str:
    return json.dumps([source, position])


def _event_key(tenant_id: str, event_id: str) -> str:
    return json.dumps([tenant_id, event_id])


def _micros(at: datetime) -> int:
    """An instant as whole microseconds since the epoch: exact, and ordered as instants are
    whatever their UTC offsets."""
    return (at - _EPOCH) // timedelta(microseconds=1)
