"""A driver's prepaid wallet. Its balance moves only together with a journal entry."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id


class Wallet(Aggregate):
    @staticmethod
    def create_id(tenant_id: str, driver_id: str) -> UUID:
        return natural_id("wallet", tenant_id, driver_id)

    @event("Opened")
    def __init__(self, tenant_id: str, driver_id: str, currency: str) -> None:
        self.tenant_id = tenant_id
        self.driver_id = driver_id
        self.currency = currency
        self.balance = Decimal(0)
        self.pending_top_up: str | None = None  # reference of a card top-up under way
        self.auto_top_ups = 0  # how many auto-top-ups were started (numbers their charges)

    @event("Credited")
    def credit(
        self, amount: Decimal, reason: str, reference: str, journal_entries: list[dict[str, Any]]
    ) -> None:
        self.balance += amount
        if self.pending_top_up == reference:
            self.pending_top_up = None

    @event("Debited")
    def debit(
        self, amount: Decimal, reason: str, reference: str, journal_entries: list[dict[str, Any]]
    ) -> None:
        # May go below zero: a session's overshoot past the balance is documented debt
        # that the next top-up repays.
        self.balance -= amount

    @event("TopUpStarted")
    def start_top_up(self, reference: str, amount: Decimal, automatic: bool = False) -> None:
        self.pending_top_up = reference
        if automatic:
            self.auto_top_ups += 1

    @event("TopUpFailed")
    def fail_top_up(self, reference: str, reason: str) -> None:
        if self.pending_top_up == reference:
            self.pending_top_up = None


class TopUpReference(Aggregate):
    """A top-up's reference, taken once: a request re-published under a new event id can
    never credit a wallet twice, whether it is a bank transfer or a card payment."""

    @staticmethod
    def create_id(tenant_id: str, reference: str) -> UUID:
        return natural_id("top_up_reference", tenant_id, reference)

    @event("Taken")
    def __init__(self, tenant_id: str, reference: str, driver_id: str) -> None:
        self.tenant_id = tenant_id
        self.reference = reference
        self.driver_id = driver_id
