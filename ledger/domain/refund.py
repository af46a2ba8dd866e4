"""Refunds of a settled session: which payer shares give money back, and how much each.

Pure. A refund of a settled session is split over the payers that paid money for it
(driver card, wallet, terminal, partner) in **reverse waterfall order**: the payer that paid
last (the driver's own model, after the partner) is refunded first, each up to what it paid
and has not had back yet. This is the split the waterfall itself would have given the
lower price, so several partial refunds add up to exactly what one refund of their sum
would give, whatever the order. Shares nobody paid money for (a discount, a plan's
allowance, what the operator absorbed) and session credit from vouchers are not refundable.

The credit lines (net and VAT per rate) of a refund are the difference between the
session's lines taken at the refunded total after and before it (`lines_share`), so the
refunds of a session reverse, summed, exactly the session's lines once everything is
refunded; each refund is spread over the rates by gross (largest remainder) and split
into net and VAT in each line's proportion, rounded half up (docs/billing-decisions.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.errors import RuleViolation
from ledger.domain.ids import natural_id
from ledger.domain.journal import JournalEntry, Posting, account, vat_account
from ledger.domain.money import round_to_minor_unit
from ledger.domain.settlement import ChargeLines
from ledger.domain.settlement_plan import lines_minus, lines_share

# Payers whose share of a session is money someone paid, hence money to give back.
REFUNDABLE_PAYERS: frozenset[str] = frozenset({"driver", "wallet", "terminal", "partner"})


@dataclass(frozen=True, slots=True)
class RefundablePart:
    """One payer's share of a session: what it may still have back."""

    payer: str  # the contract's `charged_to[].payer`
    payer_id: str
    paid: Decimal  # what it paid for the session (for a card: what the PSP collected)
    refunded: Decimal = Decimal(0)  # given back by earlier refunds

    @property
    def key(self) -> str:
        return payer_key(self.payer, self.payer_id)

    @property
    def remaining(self) -> Decimal:
        return max(self.paid - self.refunded, Decimal(0))


@dataclass(frozen=True, slots=True)
class RefundShare:
    payer: str
    payer_id: str
    amount: Decimal  # incl. VAT
    lines: ChargeLines  # its net and VAT per rate

    @property
    def key(self) -> str:
        return payer_key(self.payer, self.payer_id)

    def to_dict(self) -> dict[str, str]:
        return {"payer": self.payer, "id": self.payer_id, "amount_incl_vat": str(self.amount)}


def payer_key(payer: str, payer_id: str) -> str:
    return f"{payer}:{payer_id}"


def refundable_parts(
    charged_to: Sequence[Mapping[str, Any]], collected: Mapping[str, Decimal],
    refunded: Mapping[str, Decimal],
) -> tuple[RefundablePart, ...]:
    """The session's refundable shares in paying order. `collected` caps a payer whose money
    the PSP collects (driver, terminal) at what it did collect: a card charge still failing
    or paid elsewhere gives nothing back through the PSP."""
    parts: list[RefundablePart] = []
    for row in charged_to:
        payer, payer_id = str(row["payer"]), str(row["id"])
        if payer not in REFUNDABLE_PAYERS:
            continue
        key = payer_key(payer, payer_id)
        paid = Decimal(str(row["amount_incl_vat"]))
        if key in collected:
            paid = min(paid, collected[key])
        parts.append(RefundablePart(payer, payer_id, paid, refunded.get(key, Decimal(0))))
    return tuple(parts)


def split_refund(
    amount: Decimal, parts: Sequence[RefundablePart]
) -> tuple[tuple[str, Decimal], ...]:
    """(payer key, amount) per payer for a refund of `amount`: the last payer first, each up
    to what it has left. The amounts add up to `amount` exactly; more than is left is refused."""
    left_total = sum((p.remaining for p in parts), Decimal(0))
    if amount > left_total:
        raise RuleViolation(
            f"refund of {amount} is above what remains refundable ({left_total})"
        )
    shares: list[tuple[str, Decimal]] = []
    left = amount
    for part in reversed(parts):
        if left == 0:
            break
        taken = min(left, part.remaining)
        if taken > 0:
            shares.append((part.key, taken))
            left -= taken
    assert left == 0, left
    return tuple(shares)


def credit_lines(lines: ChargeLines, refunded_before: Decimal, amount: Decimal) -> ChargeLines:
    """Net and VAT per rate of a refund of `amount` after `refunded_before`: the session's
    lines at the new refunded total less those at the old one (so refunds telescope)."""
    after = lines_share(lines, refunded_before + amount, monotone=True)
    before = lines_share(lines, refunded_before, monotone=True)
    return lines_minus(after, before)


def plan_refund(
    lines: ChargeLines, parts: Sequence[RefundablePart], amount: Decimal | None,
) -> tuple[RefundShare, ...]:
    """Who gets what back, and its lines, for a refund of `amount` (None: all that is left).

    Raises RuleViolation with the reason: nothing refundable, an amount that is not positive,
    not in whole minor units, or above what remains."""
    currency = lines.currency
    left_total = sum((p.remaining for p in parts), Decimal(0))
    if amount is None:
        if left_total == 0:
            raise RuleViolation("nothing of this session remains refundable")
        amount = left_total
    if amount <= 0:
        raise RuleViolation(f"refund amount must be positive, not {amount}")
    if round_to_minor_unit(amount, currency) != amount:
        raise RuleViolation(f"refund amount {amount} is not a whole number of {currency} "
                            "minor units")
    split = split_refund(amount, parts)
    refunded_before = sum((p.refunded for p in parts), Decimal(0))
    rest = credit_lines(lines, refunded_before, amount)
    shares: list[RefundShare] = []
    by_key = {p.key: p for p in parts}
    for n, (key, share_amount) in enumerate(split):
        part = by_key[key]
        own = rest if n == len(split) - 1 else lines_share(rest, share_amount)
        rest = lines_minus(rest, own)
        shares.append(RefundShare(part.payer, part.payer_id, share_amount, own))
    return tuple(shares)


def reversal(entry_id: str, description: str, credit_account: str,
             share: RefundShare) -> JournalEntry:
    """The sale undone for one payer's share: revenue and VAT per rate debited, the account
    the payer's share was debited to credited (a wallet, a receivable)."""
    debits: list[Posting] = []
    for line in share.lines.lines:
        if line.net:
            debits.append(Posting(account("revenue"), line.net))
        if line.vat:
            debits.append(Posting(vat_account(line.vat_rate), line.vat))
    return JournalEntry(entry_id, share.lines.currency, description,
                        (*debits, Posting(credit_account, -share.amount)))


class SessionRefunds(Aggregate):
    """What was refunded of one settled session, per payer and per PSP payment."""

    @staticmethod
    def create_id(tenant_id: str, transaction_id: str) -> UUID:
        return natural_id("session_refunds", tenant_id, transaction_id)

    @event("Opened")
    def __init__(self, tenant_id: str, transaction_id: str, currency: str) -> None:
        self.tenant_id = tenant_id
        self.transaction_id = transaction_id
        self.currency = currency
        self.by_payer: dict[str, Decimal] = {}  # payer key -> refunded incl. VAT
        self.by_payment: dict[str, Decimal] = {}  # PSP payment key -> refunded through it
        self.total = Decimal(0)
        self.credit_cdr_issued = False

    @event("Refunded")
    def refund(
        self, refund_id: str, currency: str, amount: Decimal, reason: str, at: datetime,
        shares: list[dict[str, str]], payments: dict[str, str], credit_notes: list[str],
        credit_cdr: dict[str, Any] | None, journal_entries: list[dict[str, Any]],
    ) -> None:
        """`payments`: PSP payment key -> amount refunded through it (refund commands);
        `credit_cdr`: the OCPI credit CDR, with the refund that gives everything back."""
        for share in shares:
            key = payer_key(share["payer"], share["id"])
            self.by_payer[key] = self.by_payer.get(key, Decimal(0)) + Decimal(
                share["amount_incl_vat"])
        for key, refunded in payments.items():
            self.by_payment[key] = self.by_payment.get(key, Decimal(0)) + Decimal(refunded)
        self.total += amount
        if credit_cdr is not None:
            self.credit_cdr_issued = True


class CardRefund(Aggregate):
    """Money going back to a card through the PSP: asked once, confirmed once."""

    @staticmethod
    def create_id(tenant_id: str, command_id: str) -> UUID:
        return natural_id("card_refund", tenant_id, command_id)

    @event("Requested")
    def __init__(
        self, tenant_id: str, command_id: str, transaction_id: str, amount: Decimal,
        currency: str, receivable: str, psp_reference: str, credit_note: str,
        payment_key: str,
    ) -> None:
        """`receivable`: the account the refund entry credited, which the payout settles;
        `payment_key`: the card payment it goes back through (`hold:…`, `charge:…`)."""
        self.tenant_id = tenant_id
        self.command_id = command_id
        self.transaction_id = transaction_id
        self.amount = amount
        self.currency = currency
        self.receivable = receivable
        self.psp_reference = psp_reference
        self.credit_note = credit_note
        self.payment_key = payment_key
        self.refunded = False
        self.failure: str | None = None  # the PSP's reason when it refused to pay it out

    @event("Confirmed")
    def confirm(
        self, psp_reference: str | None, journal_entries: list[dict[str, Any]]
    ) -> None:
        self.refunded = True

    @event("Failed")
    def fail(self, request_id: str, reason: str) -> None:
        """The PSP refused: the credit note stands and the customer is still owed the amount
        (the receivable the refund credited stays below zero) until paid another way."""
        self.failure = reason

    @property
    def is_answered(self) -> bool:
        return self.refunded or self.failure is not None
