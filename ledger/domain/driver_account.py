"""A driver's standing: overdue debt that blocks new sessions until it is paid."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id


class DriverAccount(Aggregate):
    @staticmethod
    def create_id(tenant_id: str, driver_id: str) -> UUID:
        return natural_id("driver_account", tenant_id, driver_id)

    @event("Opened")
    def __init__(self, tenant_id: str, driver_id: str) -> None:
        self.tenant_id = tenant_id
        self.driver_id = driver_id
        self.overdue: dict[str, Decimal] = {}  # charge reference -> amount
        self.payment_references: list[str] = []  # debt payments applied, by their reference

    @event("DebtBecameOverdue")
    def add_overdue(self, charge_reference: str, amount: Decimal) -> None:
        self.overdue[charge_reference] = amount

    @event("DebtPaid")
    def settle_overdue(self, charge_reference: str) -> None:
        self.overdue.pop(charge_reference, None)

    @event("DebtPaymentApplied")
    def apply_payment(self, payment_reference: str, amount: Decimal) -> None:
        """A payment of the whole overdue debt; `settle_overdue` follows per charge."""
        self.payment_references.append(payment_reference)

    @property
    def overdue_total(self) -> Decimal:
        return sum(self.overdue.values(), Decimal(0))

    @property
    def has_overdue_debt(self) -> bool:
        return bool(self.overdue)
