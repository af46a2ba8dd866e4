"""Vouchers: codes issued in batches, redeemed once, paying a wallet or a driver's sessions.

Three aggregates, no I/O:
- `VoucherBatch` (tenant, batch id): what was issued, for whom, and the partner's invoice;
  its `Issued` event books the sale of a partner-bought batch.
- `Voucher` (tenant, code): one code. `balance` vouchers move their value into the driver's
  wallet when redeemed; `session_credit` vouchers stay here, held by the driver, and pay the
  driver's own share of sessions until `remaining_amount` is used up.
- `HeldSessionCredit` (tenant, driver): the codes of session credit a driver holds with value
  left, so settlement finds them without a scan.

Ids come from natural keys scoped by tenant, so another tenant's code is simply unknown here.
Journal treatment (docs/billing-decisions.md, "Vouchers"): value a partner paid for sits on
`voucher_credit:<code>` until used; promotional (campaign) value is booked to `discounts`
only when it is used or moved into a wallet.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.errors import RuleViolation
from ledger.domain.ids import natural_id
from ledger.domain.journal import account

VOUCHER_KINDS = ("balance", "session_credit")

# Session credits one driver may hold with value left. Settlement reads each of them for
# every session of the driver, so the number bounds that work; real drivers hold a handful
# (a code is used up or the driver stops redeeming long before this).
HELD_SESSION_CREDITS_MAX = 100


class VoucherBatch(Aggregate):
    @staticmethod
    def create_id(tenant_id: str, batch_id: str) -> UUID:
        return natural_id("voucher_batch", tenant_id, batch_id)

    @event("Issued")
    def __init__(
        self,
        tenant_id: str,
        batch_id: str,
        kind: str,
        codes_count: int,
        partner_id: str | None,
        invoice_number: str | None,
        journal_entries: list[dict[str, Any]],
    ) -> None:
        """`journal_entries`: the partner sale of the batch; none for a campaign."""
        assert kind in VOUCHER_KINDS, kind
        assert (partner_id is None) == (invoice_number is None), "a partner gets an invoice"
        self.tenant_id = tenant_id
        self.batch_id = batch_id
        self.kind = kind
        self.codes_count = codes_count
        self.partner_id = partner_id
        self.invoice_number = invoice_number


class Voucher(Aggregate):
    @staticmethod
    def create_id(tenant_id: str, code: str) -> UUID:
        return natural_id("voucher", tenant_id, code)

    @event("Issued")
    def __init__(
        self,
        tenant_id: str,
        code: str,
        batch_id: str,
        kind: str,
        amount: Decimal,
        currency: str,
        expires_at: datetime,
        site_location_ids: list[str],
        partner_id: str | None,
    ) -> None:
        """`amount`: the face value incl. VAT, in minor units; `partner_id`: who paid for it
        (None: a campaign, promotional value)."""
        assert kind in VOUCHER_KINDS, kind
        assert amount > 0, "a voucher has a positive face value"
        self.tenant_id = tenant_id
        self.code = code
        self.batch_id = batch_id
        self.kind = kind
        self.amount = amount
        self.currency = currency
        self.expires_at = expires_at
        self.site_location_ids = site_location_ids
        self.partner_id = partner_id
        self.driver_id: str | None = None  # who redeemed it
        self.redeemed_at: datetime | None = None
        self.remaining_amount = Decimal(0)  # session credit left to pay sessions with

    # ------------------------------------------------------------------ commands
    @event("Redeemed")
    def redeem(self, driver_id: str, at: datetime) -> None:
        """A balance voucher's value goes to the wallet (the wallet's `Credited` books it);
        session credit stays here for the driver's future sessions."""
        self.driver_id = driver_id
        self.redeemed_at = at
        self.remaining_amount = self.amount if self.kind == "session_credit" else Decimal(0)

    @event("Used")
    def use(
        self, transaction_id: str, amount: Decimal, journal_entries: list[dict[str, Any]]
    ) -> None:
        """Session credit paid `amount` of a session's driver share."""
        assert 0 < amount <= self.remaining_amount, (amount, self.remaining_amount)
        self.remaining_amount -= amount

    # ------------------------------------------------------------------ guards and questions
    def check_redeemable(self, at: datetime) -> None:
        if self.redeemed_at is not None:
            raise RuleViolation(f"voucher code {self.code!r} is already redeemed")
        if self.is_expired_at(at):
            raise RuleViolation(
                f"voucher code {self.code!r} expired at {self.expires_at.isoformat()}"
            )

    def is_expired_at(self, at: datetime) -> bool:
        return at >= self.expires_at

    def pays_at(self, location_id: str) -> bool:
        return not self.site_location_ids or location_id in self.site_location_ids

    def can_pay_session(
        self, location_id: str, started_at: datetime, ended_at: datetime
    ) -> bool:
        """Held session credit with value left, valid during the session, at its site."""
        return (
            self.kind == "session_credit"
            and self.remaining_amount > 0
            and self.redeemed_at is not None
            and self.redeemed_at <= ended_at
            and not self.is_expired_at(started_at)
            and self.pays_at(location_id)
        )

    @property
    def value_account(self) -> str:
        """Where the value comes from when it is used: what the partner paid for, or a
        promotional discount."""
        if self.partner_id is None:
            return account("discounts")
        return account("voucher_credit", self.code)


class HeldSessionCredit(Aggregate):
    """The session-credit codes a driver holds with value left, in redemption order."""

    @staticmethod
    def create_id(tenant_id: str, driver_id: str) -> UUID:
        return natural_id("held_session_credit", tenant_id, driver_id)

    @event("Opened")
    def __init__(self, tenant_id: str, driver_id: str) -> None:
        self.tenant_id = tenant_id
        self.driver_id = driver_id
        self.codes: list[str] = []

    @event("Added")
    def add(self, code: str) -> None:
        self.codes.append(code)

    @event("UsedUp")
    def remove(self, code: str) -> None:
        self.codes.remove(code)

    def check_room(self) -> None:
        if len(self.codes) >= HELD_SESSION_CREDITS_MAX:
            raise RuleViolation(
                f"driver {self.driver_id} already holds {len(self.codes)} session credits "
                f"with value left (at most {HELD_SESSION_CREDITS_MAX})"
            )
