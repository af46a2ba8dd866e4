"""Messages of one tenant that wait for what they need (docs/reliability.md, "Parking").

A message whose prerequisite has not arrived (its tenant, driver, location, tariff, the
request a PSP result answers...) is parked here, in the same transaction as the batch it
came in, so it survives a crash and its Kafka offset can move on. Messages are kept in
arrival order in lanes, one per message key (a session, a wallet, a PSP request): a lane's
first message waits for what it needs (`awaits`), the others of the lane wait behind it, so
a session's or a wallet's messages are applied in the order they came.
"""

from __future__ import annotations

from typing import Any, TypedDict
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id


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
    """The parked messages of one tenant (also of a tenant not configured yet)."""

    @staticmethod
    def create_id(tenant_id: str) -> UUID:
        return natural_id("parking_lot", tenant_id)

    @event("Opened")
    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.entries: list[ParkedEntry] = []
        # Entries per lane: every inbound message asks whether its lane is waiting.
        self.lane_sizes: dict[str, int] = {}

    @event("Parked")
    def park(self, entry: ParkedEntry) -> None:
        self.entries.append(entry)
        self.lane_sizes[entry["lane"]] = self.lane_sizes.get(entry["lane"], 0) + 1

    @event("Released")
    def release(self, positions: list[list[Any]], outcome: str) -> None:
        """The entries at these [source, position] left the lot: re-applied, or their wait
        ran out (`outcome` "expired")."""
        gone = {(str(source), int(position)) for source, position in positions}
        kept: list[ParkedEntry] = []
        for entry in self.entries:
            if (entry["source"], entry["position"]) not in gone:
                kept.append(entry)
            elif self.lane_sizes[entry["lane"]] == 1:
                del self.lane_sizes[entry["lane"]]
            else:
                self.lane_sizes[entry["lane"]] -= 1
        self.entries = kept

    def lane(self, lane: str) -> list[ParkedEntry]:
        return [e for e in self.entries if e["lane"] == lane]

    def has_lane(self, lane: str) -> bool:
        return lane in self.lane_sizes

    def heads(self) -> list[ParkedEntry]:
        """The first entry of every lane, in arrival order: the ones waiting for something."""
        seen: set[str] = set()
        found: list[ParkedEntry] = []
        for entry in self.entries:
            if entry["lane"] not in seen:
                seen.add(entry["lane"])
                found.append(entry)
        return found

    def holds_event(self, tenant_id: str, event_id: str) -> bool:
        return any(
            e["event_id"] == event_id and e["tenant_id"] == tenant_id for e in self.entries
        )
