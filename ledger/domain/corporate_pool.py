"""A partner's pool for one billing period: what it has covered, per driver, and its settlement.

One aggregate per partner and period: every session the partner covers in that period books
its share here, so the pool cap and the driver limits are checked against one version of the
truth. Concurrent writers (sessions of many drivers settling on several partitions) conflict
on its version; the losing batch is re-read and applied again (ledger/application.py), so the
cap holds under any interleaving.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.ids import natural_id


class CorporatePool(Aggregate):
    @staticmethod
    def create_id(tenant_id: str, partner_id: str, period_start: datetime) -> UUID:
        return natural_id("corporate_pool", tenant_id, partner_id, period_start.isoformat())

    @event("Opened")
    def __init__(
        self, tenant_id: str, partner_id: str, period_start: datetime, period_end: datetime,
        pool_limit: Decimal, currency: str,
    ) -> None:
        self.tenant_id = tenant_id
        self.partner_id = partner_id
        self.period_start = period_start
        self.period_end = period_end
        self.pool_limit = pool_limit
        self.currency = currency
        self.used = Decimal(0)  # billed gross, what the limits count
        self.used_by_driver: dict[str, Decimal] = {}
        # One record per covered session, for the settlement invoice.
        self.covered: list[dict[str, Any]] = []
        self.invoice_number: str | None = None
        self.is_settled = False

    @event("SessionCovered")
    def cover(
        self, transaction_id: str, driver_id: str, billed_gross: Decimal,
        share_lines: list[dict[str, Any]], billed_lines: list[dict[str, Any]],
        pool_used: Decimal,
    ) -> None:
        """The partner pays `billed_gross` of a session (its share, less its discount);
        `pool_used` is the period's total after it (what read models show)."""
        assert pool_used == self.used + billed_gross, (pool_used, self.used, billed_gross)
        self.used += billed_gross
        self.used_by_driver[driver_id] = (
            self.used_by_driver.get(driver_id, Decimal(0)) + billed_gross
        )
        self.covered.append({
            "transaction_id": transaction_id, "driver_id": driver_id,
            "billed_gross": billed_gross, "share_lines": share_lines,
            "billed_lines": billed_lines,
        })

    @event("Settled")
    def settle(self, invoice_number: str | None, journal_entries: list[dict[str, Any]]) -> None:
        """The period ended and was invoiced (None: nothing was covered, nothing invoiced)."""
        self.invoice_number = invoice_number
        self.is_settled = True

    # ------------------------------------------------------------------ questions
    def remaining(self, pool_limit: Decimal, driver_id: str, driver_limit: Decimal | None
                  ) -> Decimal:
        """What the partner may still pay for `driver` this period (billed gross)."""
        left = pool_limit - self.used
        if driver_limit is not None:
            left = min(left, driver_limit - self.used_by_driver.get(driver_id, Decimal(0)))
        return max(left, Decimal(0))

    def covers(self, transaction_id: str) -> bool:
        return any(c["transaction_id"] == transaction_id for c in self.covered)
