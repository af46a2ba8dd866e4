"""Wallets: top-ups by card or bank transfer, auto-top-up, and stopping near the balance."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from ledger.batch import Batch
from ledger.domain.errors import InvalidInput, RuleViolation
from ledger.domain.journal import account, transfer
from ledger.domain.payer import DriverTerms
from ledger.domain.session import ChargingSession
from ledger.domain.settlement import ChargeLine, ChargeLines
from ledger.domain.wallet import TopUpReference, Wallet
from ledger.handlers.documents import issue_document
from ledger.handlers.lookups import config_as_of, require_tenant, wallet_of
from ledger.handlers.orders import open_charge, request_stop
from ledger.handlers.prerequisites import wait_for
from ledger.messages import WalletTopUpRequested


def handle_top_up_requested(message: WalletTopUpRequested, batch: Batch) -> None:
    tenant = require_tenant(batch, message.tenant_id, message.occurred_at)
    driver = config_as_of(batch, "driver", message.tenant_id, message.driver_id,
                          message.occurred_at)
    if driver is None:
        wait_for("driver", message.tenant_id, message.driver_id,
                f"unknown driver {message.driver_id!r}", InvalidInput)
    reference = message.reference
    taken_id = TopUpReference.create_id(message.tenant_id, reference)
    if batch.get(TopUpReference, taken_id) is not None:
        raise RuleViolation(f"top-up reference {reference!r} was used before")
    if message.method == "card" and not driver.get("payment_method_token"):
        raise RuleViolation(f"driver {message.driver_id} has no card on file for a top-up")
    batch.add(TopUpReference(message.tenant_id, reference, message.driver_id))
    wallet = wallet_of(message.tenant_id, message.driver_id, tenant["currency"], batch)
    if message.method == "bank_transfer":
        entry = transfer(
            f"{reference}:{message.tenant_id}", wallet.currency,
            f"bank transfer {message.reference}", account("bank_clearing"),
            account("wallet", message.driver_id), message.amount,
        )
        wallet.credit(message.amount, "bank_transfer", reference, [entry.to_dict()])
        issue_top_up_receipt(wallet, message.amount, reference, message.occurred_at, batch)
        return
    token = driver["payment_method_token"]
    wallet.start_top_up(reference, message.amount)
    open_charge(
        batch, message.tenant_id, [], purpose="top_up", reference=reference,
        driver_id=message.driver_id, amount=message.amount, currency=wallet.currency,
        token=token, settles_account=account("wallet", message.driver_id),
        at=message.occurred_at,
    )


def watch_wallet(
    session: ChargingSession, running_cost: Decimal, threshold: Decimal, batch: Batch
) -> None:
    """During a session: top up in time (auto-top-up) or stop near the balance."""
    payer = session.payer
    assert payer is not None and payer.driver_id is not None
    driver = payer.driver
    wallet = wallet_of(session.tenant_id, payer.driver_id, payer.currency, batch)
    available = wallet.balance - running_cost
    now = session.ordered_readings()[-1]["timestamp"]
    if driver.tops_up_automatically:
        assert driver.auto_top_up_threshold is not None
        if available < driver.auto_top_up_threshold:
            _start_auto_top_up(wallet, driver, now, batch)
        return
    if running_cost >= wallet.balance * threshold:
        request_stop(session, "wallet balance nearly used", batch)


def top_up_if_low(wallet: Wallet, driver: DriverTerms, at: datetime, batch: Batch) -> None:
    if not driver.tops_up_automatically:
        return
    assert driver.auto_top_up_threshold is not None
    if wallet.balance < driver.auto_top_up_threshold:
        _start_auto_top_up(wallet, driver, at, batch)


def _start_auto_top_up(wallet: Wallet, driver: DriverTerms, at: datetime, batch: Batch) -> None:
    if wallet.pending_top_up is not None:
        return  # one top-up at a time; the next update checks again
    # Numbered per wallet: each auto-top-up is a charge of its own, however many a
    # session needs.
    reference = f"auto:{wallet.driver_id}:{wallet.auto_top_ups + 1}"
    amount = driver.auto_top_up_amount
    assert amount is not None
    wallet.start_top_up(reference, amount, automatic=True)
    open_charge(
        batch, wallet.tenant_id, [], purpose="top_up", reference=reference,
        driver_id=wallet.driver_id, amount=amount, currency=wallet.currency,
        token=driver.payment_method_token, settles_account=account("wallet", wallet.driver_id),
        at=at,
    )


def issue_top_up_receipt(
    wallet: Wallet, amount: Decimal, reference: str, at: datetime, batch: Batch
) -> None:
    """A top-up is a prepayment, not a supply: its receipt carries no VAT (charged on use)."""
    issue_document(
        batch, wallet.tenant_id, "wallet_top_up", reference=reference,
        bill_to=wallet.driver_id, currency=wallet.currency, issued_at=at,
        lines=ChargeLines(wallet.currency, (ChargeLine(None, amount, Decimal(0)),)),
        description="Wallet top-up",
    )
