"""Payments: holds and charges sent to the PSP, and the PSP's results applied to them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from ledger.batch import Batch
from ledger.domain.driver_account import DriverAccount
from ledger.domain.errors import InvalidInput, RuleViolation
from ledger.domain.journal import account, transfer
from ledger.domain.outbox import OutboundCommand
from ledger.domain.payment import Charge, Hold
from ledger.domain.refund import CardRefund
from ledger.domain.session import ChargingSession
from ledger.domain.wallet import Wallet
from ledger.handlers.lookups import require_tenant, schedule_of
from ledger.handlers.orders import open_charge, request_stop, send_resolution
from ledger.handlers.prerequisites import wait_for
from ledger.handlers.refunds import confirm_card_refund
from ledger.handlers.subscriptions import FEE_PURPOSE, fee_answered
from ledger.handlers.wallets import issue_top_up_receipt
from ledger.messages import DebtPaymentReceived, PaymentResult, TerminalAuthorized

# Which results answer which command.
RESULTS_FOR_ACTION: dict[str, frozenset[str]] = {
    "authorize": frozenset({"hold_authorized", "hold_failed"}),
    "capture": frozenset({"captured", "capture_failed"}),
    "release": frozenset({"released", "release_failed"}),
    "charge": frozenset({"charge_succeeded", "charge_failed"}),
    "refund": frozenset({"refunded", "refund_failed"}),
}


def handle_terminal_authorized(message: TerminalAuthorized, batch: Batch) -> None:
    tenant = require_tenant(batch, message.tenant_id, message.occurred_at)
    if message.currency != tenant["currency"]:
        raise InvalidInput(f"terminal authorization in {message.currency}")
    hold_id = Hold.create_id(message.tenant_id, "terminal:" + message.terminal_reference)
    if batch.get(Hold, hold_id) is not None:
        raise InvalidInput(f"terminal reference {message.terminal_reference} authorized twice")
    hold = Hold(
        tenant_id=message.tenant_id, reference="terminal:" + message.terminal_reference,
        amount=message.amount, currency=message.currency, payment_method_token=None,
        authorize_command_id=None,
    )
    hold.authorize(message.psp_reference, message.occurred_at)
    batch.add(hold)


# ---------------------------------------------------------------- PSP results
def handle_payment_result(message: PaymentResult, batch: Batch) -> None:
    command = batch.get(
        OutboundCommand, OutboundCommand.create_id(message.tenant_id, message.request_id)
    )
    if command is None:
        # The command is issued by a message on another topic that may not be applied yet.
        wait_for("request", message.tenant_id, message.request_id,
                f"result for unknown request {message.request_id!r}", InvalidInput)
    action = command.payload["action"]
    if message.outcome not in RESULTS_FOR_ACTION[action]:
        raise InvalidInput(f"outcome {message.outcome} does not answer a {action} request")
    if message.currency != command.payload["currency"]:
        raise InvalidInput(f"result in {message.currency}, request in "
                           f"{command.payload['currency']}")
    subject_id = UUID(hex=command.subject["id"])
    if command.subject["kind"] == "hold":
        hold = batch.get(Hold, subject_id)
        assert hold is not None
        _apply_hold_result(hold, action, message, batch)
    elif command.subject["kind"] == "card_refund":
        refund = batch.get(CardRefund, subject_id)
        assert refund is not None
        confirm_card_refund(refund, message)
    else:
        charge = batch.get(Charge, subject_id)
        assert charge is not None
        _apply_charge_result(charge, message, batch)


def _apply_hold_result(hold: Hold, action: str, message: PaymentResult, batch: Batch) -> None:
    at = message.occurred_at
    if action == "authorize":
        if hold.authorization != "pending":
            raise InvalidInput(f"hold {hold.reference} already answered")
        session = batch.get(
            ChargingSession, ChargingSession.create_id(hold.tenant_id, hold.reference)
        )
        if message.outcome == "hold_authorized":
            if message.amount != hold.amount:
                raise InvalidInput(f"hold authorized for {message.amount}, not {hold.amount}")
            hold.authorize(message.psp_reference, at)
            if hold.is_resolution_decided:
                send_resolution(hold, at, batch)  # the session ended before the answer
        else:
            hold.decline(message.reason or "declined", at)
            if session is not None:
                _after_hold_declined(session, hold, batch, at)
        return
    if action == "capture" and message.outcome == "capture_failed":
        hold.check_capture(message.amount)
        hold.record_capture_failure(message.request_id, message.reason or "capture failed")
        _after_capture_failed(hold, batch, at)
    elif action == "release" and message.outcome == "release_failed":
        if hold.released:
            raise InvalidInput(f"hold {hold.reference} already released")
        # Not our money either way: the PSP lets an uncaptured authorization lapse
        # (Stripe: after 7 days). Recorded with its reason for operations.
        hold.record_release_failure(message.request_id, message.reason or "release failed")
    elif action == "capture":
        hold.check_capture(message.amount)
        receivable = _receivable_of_hold(hold, batch)
        entry = transfer(
            f"capture:{hold.tenant_id}:{hold.reference}", hold.currency,
            f"hold captured {hold.reference}", account("psp_clearing"), receivable,
            message.amount,
        )
        hold.record_capture(message.request_id, message.amount, [entry.to_dict()])
    elif action == "release":
        if hold.released:
            raise InvalidInput(f"hold {hold.reference} already released")
        expected = hold.amount - (hold.capture_amount or Decimal(0))
        if message.amount != expected:
            raise InvalidInput(
                f"release of {message.amount} differs from the {expected} asked"
            )
        hold.record_release(message.request_id, message.amount)
    capture_done = (hold.capture_amount == 0 or hold.captured == hold.capture_amount
                    or hold.capture_failure is not None)
    release_done = (hold.capture_amount == hold.amount or hold.released
                    or hold.release_failure is not None)
    if capture_done and release_done and hold.resolution != "resolved":
        hold.resolve()


def _receivable_of_hold(hold: Hold, batch: Batch) -> str:
    if hold.reference.startswith("terminal:"):
        return account("driver_receivable", hold.reference)
    session = batch.get(ChargingSession, ChargingSession.create_id(hold.tenant_id,
                                                                   hold.reference))
    assert session is not None and session.payer is not None
    return account("driver_receivable", str(session.payer.driver_id))


def _after_capture_failed(hold: Hold, batch: Batch, at: datetime) -> None:
    """The hold would have paid the session; the driver still owes it: charge the card on
    file instead, on the tenant's retry schedule (overdue debt if every attempt fails). A
    terminal's hold has no card behind it: its receivable stays open as debt."""
    if hold.reference.startswith("terminal:"):
        return
    session = batch.get(ChargingSession, ChargingSession.create_id(hold.tenant_id,
                                                                   hold.reference))
    assert session is not None and session.payer is not None
    payer = session.payer
    assert payer.driver_id is not None and hold.capture_amount is not None
    tenant = require_tenant(batch, session.tenant_id, at)
    open_charge(
        batch, session.tenant_id, tenant["retry_schedule_hours"], purpose="failed_capture",
        reference=hold.reference, driver_id=payer.driver_id, amount=hold.capture_amount,
        currency=hold.currency, token=payer.payment_method_token,
        settles_account=account("driver_receivable", payer.driver_id), at=at,
    )


def _after_hold_declined(
    session: ChargingSession, hold: Hold, batch: Batch, at: datetime
) -> None:
    request_stop(session, "pre-authorization declined", batch)
    if hold.is_resolution_decided and hold.capture_amount:
        # Settled before the decline arrived: what the hold was to cover is now post-paid.
        payer = session.payer
        assert payer is not None and payer.driver_id is not None
        tenant = require_tenant(batch, session.tenant_id, at)
        open_charge(
            batch, session.tenant_id, tenant["retry_schedule_hours"], purpose="declined_hold",
            reference=hold.reference, driver_id=payer.driver_id,
            amount=hold.capture_amount, currency=hold.currency,
            token=payer.payment_method_token,
            settles_account=account("driver_receivable", payer.driver_id), at=at,
        )


def _apply_charge_result(charge: Charge, message: PaymentResult, batch: Batch) -> None:
    if charge.status in ("succeeded", "paid_elsewhere"):
        raise InvalidInput(f"charge {charge.purpose}:{charge.reference} is already paid")
    if not charge.is_current_attempt(message.request_id):
        raise InvalidInput(f"result for a superseded attempt {message.request_id}")
    charge.check_result_amount(message.amount)
    at = message.occurred_at
    if message.outcome == "charge_succeeded":
        entry = transfer(
            f"charge:{charge.tenant_id}:{charge.purpose}:{charge.reference}", charge.currency,
            f"{charge.purpose} {charge.reference} paid by card", account("psp_clearing"),
            charge.settles_account, charge.amount,
        )
        was_overdue = charge.overdue
        if charge.purpose == "top_up":
            wallet = batch.get(Wallet, Wallet.create_id(charge.tenant_id, charge.driver_id))
            assert wallet is not None
            charge.succeed(message.request_id, message.psp_reference, [])
            wallet.credit(charge.amount, "top_up", charge.reference, [entry.to_dict()])
            issue_top_up_receipt(wallet, charge.amount, charge.reference, at, batch)
        else:
            charge.succeed(message.request_id, message.psp_reference, [entry.to_dict()])
        if charge.purpose == FEE_PURPOSE:
            fee_answered(batch, charge.tenant_id, charge.driver_id, True, "")
        if was_overdue:
            account_ = batch.get(
                DriverAccount, DriverAccount.create_id(charge.tenant_id, charge.driver_id)
            )
            if account_ is not None:
                account_.settle_overdue(f"{charge.purpose}:{charge.reference}")
        return
    charge.fail_attempt(message.request_id, message.reason or "declined", at)
    if charge.purpose == FEE_PURPOSE:
        fee_answered(batch, charge.tenant_id, charge.driver_id, False,
                     message.reason or "declined")
    if charge.purpose == "top_up":
        wallet = batch.get(Wallet, Wallet.create_id(charge.tenant_id, charge.driver_id))
        if wallet is not None:
            wallet.fail_top_up(charge.reference, message.reason or "declined")
        return
    retry_at = charge.next_retry_at()
    if retry_at is not None:
        schedule_of(charge.tenant_id, batch).schedule(retry_at, "charge_retry", charge.id.hex)
        return
    charge.become_overdue(at)
    account_ = batch.get(
        DriverAccount, DriverAccount.create_id(charge.tenant_id, charge.driver_id)
    )
    if account_ is None:
        account_ = DriverAccount(tenant_id=charge.tenant_id, driver_id=charge.driver_id)
        batch.add(account_)
    account_.add_overdue(f"{charge.purpose}:{charge.reference}", charge.amount)


# ---------------------------------------------------------------- debt paid elsewhere
CLEARING_FOR_METHOD: dict[str, str] = {
    "card": "psp_clearing", "cash": "bank_clearing", "bank_transfer": "bank_clearing",
}


def handle_debt_payment(message: DebtPaymentReceived, batch: Batch) -> None:
    """The driver paid their whole overdue debt (app, counter, bank): every overdue charge is
    settled from that payment and can no longer be collected; new sessions may start.

    Checks first: an unknown driver or currency is invalid input; a payment that does not
    match the overdue total, or repeats a reference, is refused with the reason."""
    tenant = require_tenant(batch, message.tenant_id, message.occurred_at)
    if message.currency != tenant["currency"]:
        raise InvalidInput(f"debt payment in {message.currency}, tenant bills in "
                           f"{tenant['currency']}")
    account_ = batch.get(
        DriverAccount, DriverAccount.create_id(message.tenant_id, message.driver_id)
    )
    if account_ is None or not account_.has_overdue_debt:
        raise RuleViolation(f"driver {message.driver_id} has no overdue debt to pay")
    if message.reference in account_.payment_references:
        raise RuleViolation(f"debt payment {message.reference!r} was applied before")
    if message.amount != account_.overdue_total:
        raise RuleViolation(
            f"debt payment of {message.amount} does not match the overdue debt of "
            f"{account_.overdue_total} {message.currency}"
        )
    charges: list[Charge] = []
    for charge_reference in sorted(account_.overdue):
        purpose, reference = charge_reference.split(":", 1)
        charge = batch.get(Charge, Charge.create_id(message.tenant_id, purpose, reference))
        assert charge is not None, f"overdue debt {charge_reference} has its charge"
        charges.append(charge)
    account_.apply_payment(message.reference, message.amount)
    clearing = account(CLEARING_FOR_METHOD[message.method])
    for charge in charges:
        entry = transfer(
            f"debt:{charge.tenant_id}:{charge.purpose}:{charge.reference}", charge.currency,
            f"{charge.purpose} {charge.reference} paid by {message.method} "
            f"({message.reference})", clearing, charge.settles_account, charge.amount,
        )
        charge.settle_elsewhere(message.reference, message.method, [entry.to_dict()])
        account_.settle_overdue(f"{charge.purpose}:{charge.reference}")
