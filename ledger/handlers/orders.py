"""What the ledger asks of others: PSP payment commands and CSMS stop requests.

Every command goes through the batch's outbox with an id derived from its cause, so the same
cause never issues a second command. Imports only the batch, the domain and `lookups`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.batch import Batch
from ledger.domain.ids import command_id
from ledger.domain.payment import Charge, Hold
from ledger.domain.session import ChargingSession
from ledger.messages import COMMAND_PRODUCER, PaymentCommand, StopSessionRequested

PAYMENT_LABEL_LENGTH_MAX = 64  # PaymentCommand.reference on the wire


def issue_payment_command(
    batch: Batch, *, tenant_id: str, cid: str, action: str, amount: Decimal, currency: str,
    token: str | None, reference: str, psp_reference: str | None, at: datetime, key: str,
    subject: dict[str, str],
) -> None:
    batch.issue(
        PaymentCommand(
            event_id=cid, tenant_id=tenant_id, occurred_at=at, producer=COMMAND_PRODUCER,
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
    assert payer.hold_amount is not None, "a pre-authorized session has a hold amount"
    tx = session.transaction_id
    cid = command_id(session.tenant_id, "authorize", tx)
    hold = Hold(
        tenant_id=session.tenant_id, reference=tx, amount=payer.hold_amount,
        currency=payer.currency, payment_method_token=payer.payment_method_token,
        authorize_command_id=cid,
    )
    batch.add(hold)
    issue_payment_command(
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
        send_resolution(hold, at, batch)
    elif hold.authorization == "declined":
        hold.resolve()  # nothing was reserved: nothing to capture or release


def send_resolution(hold: Hold, at: datetime, batch: Batch) -> None:
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
        issue_payment_command(
            batch, cid=capture_id, action="capture", amount=hold.capture_amount, **common
        )
    if rest > 0:
        issue_payment_command(batch, cid=release_id, action="release", amount=rest, **common)
    if hold.capture_amount == 0 and rest == 0:
        hold.resolve()


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
    issue_payment_command(
        batch, tenant_id=charge.tenant_id, cid=cid, action="charge", amount=charge.amount,
        currency=charge.currency, token=charge.payment_method_token,
        reference=f"{charge.purpose}:{charge.reference}", psp_reference=None, at=at,
        key=f"{charge.tenant_id}:{charge.driver_id}",
        subject={"kind": "charge", "id": charge.id.hex},
    )


# ---------------------------------------------------------------- CSMS
def request_stop(session: ChargingSession, reason: str, batch: Batch) -> None:
    """Ask the CSMS to stop the session: once per session, with the reason."""
    if session.stop_requested or session.ended_at is not None:
        return
    stop_id = command_id(session.tenant_id, "stop", session.transaction_id)
    session.request_stop(reason, stop_id)
    batch.issue(
        StopSessionRequested(
            event_id=stop_id, tenant_id=session.tenant_id,
            occurred_at=session.ordered_readings()[-1]["timestamp"], producer=COMMAND_PRODUCER,
            transaction_id=session.transaction_id, location_id=session.location_id,
            charge_point_id=session.charge_point_id, reason=reason,
        ),
        key=f"{session.tenant_id}:{session.transaction_id}",
        subject={"kind": "session", "id": session.id.hex},
    )


