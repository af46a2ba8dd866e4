"""Work due at a time (payment retries, settling stale sessions), run on event time.

One schedule per tenant. A `ClockTicked` event runs what is due, in due order, so a replay of
the same events is a replay of time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id


class Schedule(Aggregate):
    @staticmethod
    def create_id(tenant_id: str) -> UUID:
        return natural_id("schedule", tenant_id)

    @event("Opened")
    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.entries: list[dict[str, Any]] = []
        self.now: datetime | None = None

    @event("Scheduled")
    def schedule(self, due_at: datetime, kind: str, subject: str) -> None:
        self.entries.append({"due_at": due_at, "kind": kind, "subject": subject})
        self.entries.sort(key=lambda e: (e["due_at"], e["kind"], e["subject"]))

    @event("Ran")
    def mark_done(self, kind: str, subject: str, at: datetime) -> None:
        self.entries = [
            e for e in self.entries if not (e["kind"] == kind and e["subject"] == subject)
        ]

    @event("Advanced")
    def advance(self, now: datetime) -> None:
        self.now = now

    def due(self, now: datetime) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["due_at"] <= now]

    def has(self, kind: str, subject: str) -> bool:
        return any(e["kind"] == kind and e["subject"] == subject for e in self.entries)
