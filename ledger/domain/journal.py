"""Double-entry journal: every movement of money is a balanced entry between named accounts.

Postings are signed: a debit is positive, a credit negative, so an entry balances when its
postings sum to exactly zero in each currency. Amounts are rounded to the minor unit before
they are posted: the journal never holds fractions of a cent.

Account names are `<kind>` or `<kind>:<owner>`; the kinds are the accounts BILLING_RULES.md
names. A liability (wallet, voucher credit) holds a credit balance: its balance as the
customer sees it is minus the sum of its postings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.domain.errors import InvalidAmount
from ledger.domain.money import round_to_minor_unit

ACCOUNT_KINDS: frozenset[str] = frozenset(
    {
        "driver_receivable",  # what a driver owes us (per driver)
        "wallet",  # prepaid balance we owe a driver (liability, per driver)
        "voucher_credit",  # unredeemed voucher value we owe (liability, per code)
        "partner_receivable",  # what a partner owes us (per partner)
        "psp_clearing",  # money the PSP holds for us or has paid out
        "revenue",  # charging revenue, net of VAT
        "vat_payable",  # VAT owed to the tax office (per rate)
        "operator_absorbed_cost",  # free charging the operator pays for itself
        "discounts",  # discounts granted (contra-revenue)
        "subscription_allowance",  # charging a plan's fee already paid for (contra-revenue)
        "bank_clearing",  # bank transfers received, not yet reconciled
    }
)


@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    amount: Decimal  # debit > 0, credit < 0

    def to_dict(self) -> dict[str, str]:
        return {"account": self.account, "amount": str(self.amount)}


def account(kind: str, owner: str | None = None) -> str:
    if kind not in ACCOUNT_KINDS:
        raise ValueError(f"unknown account kind {kind!r}")  # programmer error: fixed set
    return kind if owner is None else f"{kind}:{owner}"


def vat_account(rate_percent: Decimal | None) -> str:
    """VAT payable is kept per rate, so invoices and returns can show VAT per rate."""
    rate = "none" if rate_percent is None else format(rate_percent.normalize(), "f")
    return account("vat_payable", rate)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One balanced movement: `entry_id` is unique, so replaying the cause books nothing new."""

    entry_id: str
    currency: str
    description: str
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        if len(self.postings) < 2:
            raise InvalidAmount(f"entry {self.entry_id} needs at least two postings")
        for p in self.postings:
            if round_to_minor_unit(p.amount, self.currency) != p.amount:
                raise InvalidAmount(f"entry {self.entry_id}: {p.amount} is not in minor units")
        total = sum((p.amount for p in self.postings), Decimal(0))
        if total != 0:
            raise InvalidAmount(f"entry {self.entry_id} does not balance: sum {total}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "currency": self.currency,
            "description": self.description,
            "postings": [p.to_dict() for p in self.postings],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalEntry:
        return cls(
            entry_id=data["entry_id"],
            currency=data["currency"],
            description=data["description"],
            postings=tuple(Posting(p["account"], Decimal(p["amount"])) for p in data["postings"]),
        )


def transfer(
    entry_id: str, currency: str, description: str, debit: str, credit: str, amount: Decimal
) -> JournalEntry:
    """The simplest entry: `amount` moves from `credit` to `debit`."""
    return JournalEntry(
        entry_id, currency, description, (Posting(debit, amount), Posting(credit, -amount))
    )


def sale(
    entry_id: str,
    currency: str,
    description: str,
    debit: str,
    net_by_vat_rate: dict[Decimal | None, Decimal],
    vat_by_vat_rate: dict[Decimal | None, Decimal],
    co_debits: Sequence[Posting] = (),
) -> JournalEntry:
    """A sale: the payer's account is debited the gross; revenue and VAT per rate credited.

    `co_debits` are shares other payers take (a partner, a discount): `debit` is then debited
    only what they leave. Inputs are already rounded amounts (the invoice lines), so the entry
    balances exactly.
    """
    credits: list[Posting] = []
    gross = Decimal(0)
    for rate in sorted(net_by_vat_rate, key=lambda r: Decimal(-1) if r is None else r):
        net = net_by_vat_rate[rate]
        vat = vat_by_vat_rate.get(rate, Decimal(0))
        gross += net + vat
        if net:
            credits.append(Posting(account("revenue"), -net))
        if vat:
            credits.append(Posting(vat_account(rate), -vat))
    own = gross - sum((p.amount for p in co_debits), Decimal(0))
    debits = [Posting(debit, own)] if own or not co_debits else []
    postings = [*debits, *co_debits, *credits]
    if len(postings) == 1:  # a free session: a zero entry still names who would pay
        postings.append(Posting(account("revenue"), Decimal(0)))
    return JournalEntry(entry_id, currency, description, tuple(postings))
