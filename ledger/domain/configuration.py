"""Effective-dated configuration: tenant settings, tariffs, locations, drivers.

Every change is an event with an effective time. A session reads the configuration in force
at its start, so a later change never reprices it, and an out-of-order arrival (a change
published late with an earlier effective time) still lands in the right place in history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id


class EffectiveDated(Aggregate):
    """A thing whose settings change over time; `as_of(t)` gives those in force at t."""

    KIND = "config"

    @staticmethod
    def create_id(kind: str, tenant_id: str, key: str) -> UUID:
        return natural_id(kind, tenant_id, key)

    @event("Created")
    def __init__(self, kind: str, tenant_id: str, key: str) -> None:
        self.kind = kind
        self.tenant_id = tenant_id
        self.key = key
        # (effective_at ISO, change event id, settings) sorted by effective time then id.
        self.versions: list[dict[str, Any]] = []

    @event("Changed")
    def change(
        self, effective_at: datetime, source_event_id: str, settings: dict[str, Any]
    ) -> None:
        self.versions.append(
            {"effective_at": effective_at, "event_id": source_event_id, "settings": settings}
        )
        self.versions.sort(key=lambda v: (v["effective_at"], v["event_id"]))

    def as_of(self, moment: datetime) -> dict[str, Any] | None:
        current: dict[str, Any] | None = None
        for version in self.versions:
            if version["effective_at"] <= moment:
                current = version["settings"]
            else:
                break
        return current

    def has_change(self, source_event_id: str) -> bool:
        return any(v["event_id"] == source_event_id for v in self.versions)


def config_id(kind: str, tenant_id: str, key: str) -> UUID:
    return EffectiveDated.create_id(kind, tenant_id, key)
