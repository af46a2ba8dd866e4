"""A tariff as the operator published it, in plain words and with its lint warnings: what
operations and drivers are shown (the report, the app), recorded once per publication."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id


class TariffPublication(Aggregate):
    @staticmethod
    def create_id(tenant_id: str, tariff_id: str, source_event_id: str) -> UUID:
        return natural_id("tariff_publication", tenant_id, tariff_id, source_event_id)

    @event("Published")
    def __init__(
        self, tenant_id: str, tariff_id: str, source_event_id: str, effective_at: datetime,
        language: str, explanation: list[str], warnings: list[str],
    ) -> None:
        """`source_event_id`: the TariffPublished this records (one record per publication)."""
        self.tenant_id = tenant_id
        self.source_event_id = source_event_id
        self.tariff_id = tariff_id
        self.effective_at = effective_at
        self.language = language
        self.explanation = explanation
        self.warnings = warnings
