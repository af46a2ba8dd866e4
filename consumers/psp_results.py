"""The `PaymentResult` a PSP adapter sends back: one builder, one id scheme, for every PSP.

`ledger psp-simulator` and `ledger psp-stripe` answer the same way:
- `request_id` is the command's `event_id` (the ledger's deterministic command id);
- the result's `event_id` is derived from the tenant and the command id only, so every
  answer to one command (a re-sent command, a restart, or Stripe's webhook confirming what
  the synchronous call already answered) publishes the same event id, which the ledger
  deduplicates: the first answer wins;
- `psp_reference` is the PSP's id of the hold or charge (a capture, release or refund
  quotes the reference of the payment it acts on).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid5

from ledger.messages import PaymentCommand, PaymentOutcome, PaymentResult

# Namespace of the result ids (kept from the simulator, so its ids did not change).
RESULT_NAMESPACE = UUID("0b6f3c55-5d0e-5a8e-9b0f-2d4c6e8a1f37")

SUCCESS_OUTCOME: dict[str, PaymentOutcome] = {
    "authorize": "hold_authorized",
    "capture": "captured",
    "release": "released",
    "charge": "charge_succeeded",
    "refund": "refunded",
}
# Every command can fail (handlers/payments.py says what each failure does).
FAILURE_OUTCOME: dict[str, PaymentOutcome] = {
    "authorize": "hold_failed",
    "capture": "capture_failed",
    "release": "release_failed",
    "charge": "charge_failed",
    "refund": "refund_failed",
}


def result_event_id_for(tenant_id: str, command_id: str) -> str:
    return str(uuid5(RESULT_NAMESPACE, f"result\x1f{tenant_id}\x1f{command_id}"))


def result_event_id(command: PaymentCommand) -> str:
    return result_event_id_for(command.tenant_id, command.event_id)


def payment_result(
    *, tenant_id: str, command_id: str, outcome: PaymentOutcome, amount: Decimal,
    currency: str, at: datetime, producer: str, psp_reference: str | None,
    reason: str | None,
) -> PaymentResult:
    return PaymentResult(
        event_id=result_event_id_for(tenant_id, command_id),
        tenant_id=tenant_id,
        occurred_at=at,
        producer=producer,
        request_id=command_id,
        outcome=outcome,
        amount=amount,
        currency=currency,
        psp_reference=psp_reference,
        reason=reason,
    )


def answer_to(
    command: PaymentCommand, *, approved: bool, at: datetime, producer: str,
    psp_reference: str | None, reason: str | None, amount: Decimal | None = None,
) -> PaymentResult:
    """The result for `command`: its success outcome, or its failure outcome with `reason`."""
    if approved:
        outcome = SUCCESS_OUTCOME[command.action]
    else:
        # A programmer error: capture, release and refund have no failure outcome to send.
        assert command.action in FAILURE_OUTCOME, f"{command.action} cannot be answered failed"
        outcome = FAILURE_OUTCOME[command.action]
    return payment_result(
        tenant_id=command.tenant_id, command_id=command.event_id, outcome=outcome,
        amount=command.amount if amount is None else amount, currency=command.currency,
        at=at, producer=producer, psp_reference=psp_reference if approved else None,
        reason=None if approved else reason,
    )
