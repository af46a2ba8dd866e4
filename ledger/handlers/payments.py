"""Payments: holds and charges sent to the PSP, and the PSP's results applied to them."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.application import Batch
from ledger.domain.driver_account import DriverAccount
from ledger.domain.errors import InvalidInput
from ledger.domain.ids import command_id
from ledger.domain.journal import account, transfer
from ledger.domain.outbox import OutboundCommand
from ledger.domain.payment import Charge, Hold
from ledger.domain.session import ChargingSession
from ledger.domain.wallet import Wallet
from ledger.messages import PaymentCommand, PaymentResult, TerminalAuthorized

PAYMENT_LABEL_LENGTH_MAX = 64  # PaymentCommand.reference on the wire

# Which results answer which command.
RESULTS_FOR_ACTION: dict[str, frozenset[str]] = {
    "authorize": frozenset({"hold_authorized", "hold_failed"}),
    "capture": frozenset({"captured"}),
    "release": frozenset({"released"}),
    "charge": frozenset({"charge_succeeded", "charge_failed"}),
    "refund": frozenset({"refunded"}),
}


def _command(
    batch: Batch, *, tenant_id: str, cid: str, action: str, amount: Decimal, currency: str,
    token: str | None, reference: str, psp_reference: str | None, at: datetime, key: str,
    subject: dict[str, str],
) -> None:
    batch.issue(
        PaymentCommand(
            event_id=cid, tenant_id=tenant_id, occurred_at=at, producer="evledger",
            action=action,
            idempotency_key=cid, amount=amount, currency=currency,
            payment_method_token=token, reference=payment_label(reference),
            psp_reference=psp_reference,
        ),
        key=key,
        subject=subject,
    )


def payment_label(reference: str) -> str:
    """What the money is for, as the PSP shows it: at most 64 characters (the wire limit).

    A longer reference keeps its readable start and ends with a digest of the whole, so two
    long references never share a label. The command id, not the label, is the identity.
    """
    if len(reference) <= PAYMENT_LABEL_LENGTH_MAX:
        return reference
    digest = hashlib.sha256(reference.encode()).hexdigest()[:12]
    return f"{reference[:PAYMENT_LABEL_LENGTH_MAX - 13]}~{digest}"


# ---------------------------------------------------------------- holds
def request_hold(session: ChargingSession, batch: Batch) -> None:
    payer = session.payer
    assert payer is not None and session.started_at is not None
    tx = session.transaction_id
    cid = command_id(session.tenant_id, "authorize", tx)
    hold = Hold(
        tenant_id=session.tenant_id, reference=tx, amount=Decimal(payer["hold_amount"]),
        currency=payer["currency"], payment_method_token=payer["payment_method_token"],
        authorize_command_id=cid,
    )
    batch.add(hold)
    _command(
        batch, tenant_id=session.tenant_id, cid=cid, action="authorize", amount=hold.amount,
        currency=hold.currency, token=hold.payment_method_token, reference=tx,
        psp_reference=None, at=session.started_at, key=f"{session.tenant_id}:{tx}",
        subject={"kind": "hold", "id": hold.id.hex},
    )


def resolve_hold(hold: Hold, capture_amount: Decimal, at: datetime, batch: Batch) -> None:
    """Decide once: capture `capture_amount`, release the rest (sent once authorized)."""
    if hold.is_resolution_decided:
        return
    capture_amount = min(capture_amount, hold.amount)
    ids = [command_id(hold.tenant_id, "capture", hold.reference),
           command_id(hold.tenant_id, "release", hold.reference)]
    hold.decide_resolution(capture_amount, ids)
    if hold.authorization == "authorized":
        _send_resolution(hold, at, batch)
    elif hold.authorization == "declined":
        hold.resolve()  # nothing was reserved: nothing to capture or release


def _send_resolution(hold: Hold, at: datetime, batch: Batch) -> None:
    assert hold.capture_amount is not None
    capture_id, release_id = hold.resolution_command_ids
    rest = hold.amount - hold.capture_amount
    common: dict[str, Any] = {
        "tenant_id": hold.tenant_id, "currency": hold.currency,
        "token": hold.payment_method_token, "reference": hold.reference,
        "psp_reference": hold.psp_reference, "at": at,
        "key": f"{hold.tenant_id}:{hold.reference}",
        "subject": {"kind": "hold", "id": hold.id.hex},
    }
    if hold.capture_amount > 0:
        _command(batch, cid=capture_id, action="capture", amount=hold.capture_amount, **common)
    if rest > 0:
        _command(batch, cid=release_id, action="release", amount=rest, **common)
    if hold.capture_amount == 0 and rest == 0:
        hold.resolve()


def handle_terminal_authorized(message: TerminalAuthorized, batch: Batch) -> None:
    from ledger.handlers.config import require_tenant

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


# ---------------------------------------------------------------- charges
def open_charge(
    batch: Batch, tenant_id: str, retry_schedule_hours: list[int], *, purpose: str,
    reference: str, driver_id: str, amount: Decimal, currency: str, token: str | None,
    settles_account: str, at: datetime,
) -> Charge:
    existing = batch.get(Charge, Charge.create_id(tenant_id, purpose, reference))
    if existing is not None:
        return existing
    charge = Charge(
        tenant_id=tenant_id, purpose=purpose, reference=reference, driver_id=driver_id,
        amount=amount, currency=currency, payment_method_token=token,
        settles_account=settles_account,
        retry_schedule_hours=list(retry_schedule_hours) if purpose != "top_up" else [],
    )
    batch.add(charge)
    issue_attempt(charge, at, batch)
    return charge


def issue_attempt(charge: Charge, at: datetime, batch: Batch) -> None:
    attempt = charge.attempt_count + 1
    cid = command_id(charge.tenant_id, "charge", charge.purpose, charge.reference, str(attempt))
    charge.issue_attempt(cid, cid, at)
    _command(
        batch, tenant_id=charge.tenant_id, cid=cid, action="charge", amount=charge.amount,
        currency=charge.currency, token=charge.payment_method_token,
        reference=f"{charge.purpose}:{charge.reference}", psp_reference=None, at=at,
        key=f"{charge.tenant_id}:{charge.driver_id}",
        subject={"kind": "charge", "id": charge.id.hex},
    )


# ---------------------------------------------------------------- PSP results
def handle_payment_result(message: PaymentResult, batch: Batch) -> None:
    command = batch.get(
        OutboundCommand, OutboundCommand.create_id(message.tenant_id, message.request_id)
    )
    if command is None:
        raise InvalidInput(f"result for unknown request {message.request_id!r}")
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
                _send_resolution(hold, at, batch)  # the session ended before the answer
        else:
            hold.decline(message.reason or "declined", at)
            if session is not None:
                _after_hold_declined(session, hold, batch, at)
        return
    if action == "capture":
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
    capture_done = hold.capture_amount == 0 or hold.captured == hold.capture_amount
    release_done = hold.capture_amount == hold.amount or hold.released
    if capture_done and release_done and hold.resolution != "resolved":
        hold.resolve()


def _receivable_of_hold(hold: Hold, batch: Batch) -> str:
    if hold.reference.startswith("terminal:"):
        return account("driver_receivable", hold.reference)
    session = batch.get(ChargingSession, ChargingSession.create_id(hold.tenant_id,
                                                                   hold.reference))
    assert session is not None and session.payer is not None
    return account("driver_receivable", session.payer["driver_id"])


def _after_hold_declined(
    session: ChargingSession, hold: Hold, batch: Batch, at: datetime
) -> None:
    from ledger.handlers.config import require_tenant
    from ledger.handlers.sessions import request_stop

    request_stop(session, "pre-authorization declined", batch)
    if hold.is_resolution_decided and hold.capture_amount:
        # Settled before the decline arrived: what the hold was to cover is now post-paid.
        payer = session.payer
        assert payer is not None
        tenant = require_tenant(batch, session.tenant_id, at)
        open_charge(
            batch, session.tenant_id, tenant["retry_schedule_hours"], purpose="declined_hold",
            reference=hold.reference, driver_id=payer["driver_id"],
            amount=hold.capture_amount, currency=hold.currency,
            token=payer["payment_method_token"],
            settles_account=account("driver_receivable", payer["driver_id"]), at=at,
        )


def _apply_charge_result(charge: Charge, message: PaymentResult, batch: Batch) -> None:
    if charge.status in ("succeeded",):
        raise InvalidInput(f"charge {charge.purpose}:{charge.reference} already succeeded")
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
            from ledger.handlers.wallets import issue_top_up_receipt

            issue_top_up_receipt(wallet, charge.amount, charge.reference, at, batch)
        else:
            charge.succeed(message.request_id, message.psp_reference, [entry.to_dict()])
        if was_overdue:
            account_ = batch.get(
                DriverAccount, DriverAccount.create_id(charge.tenant_id, charge.driver_id)
            )
            if account_ is not None:
                account_.settle_overdue(f"{charge.purpose}:{charge.reference}")
        return
    charge.fail_attempt(message.request_id, message.reason or "declined", at)
    if charge.purpose == "top_up":
        wallet = batch.get(Wallet, Wallet.create_id(charge.tenant_id, charge.driver_id))
        if wallet is not None:
            wallet.fail_top_up(charge.reference, message.reason or "declined")
        return
    retry_at = charge.next_retry_at()
    if retry_at is not None:
        from ledger.handlers.sessions import schedule_of

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
