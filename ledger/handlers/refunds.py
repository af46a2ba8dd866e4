"""Refunding a settled session: credit notes, money back to whoever paid, the sale reversed.

Checks first, each a reason event with nothing changed (RuleViolation): an unknown or
unsettled session, an amount that is not positive or above what remains refundable. Then,
per payer share (`ledger.domain.refund.plan_refund`):
- a credit note in the `credit_note` series (CN-...), billed to whoever the share was billed
  to, its `reference` the document it corrects (the session's receipt; for a partner, its
  period's settlement invoice, or that settlement's reference while it is not issued yet);
- the journal entry reversing the share's sale (revenue and VAT per rate against the
  payer's account);
- the money: a PSP `refund` command per card payment it came from (driver card, terminal),
  the wallet credited back, the partner's receivable credited (deducted from what it owes).
The OCPI credit CDR is issued with the refund that gives everything back.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger.batch import Batch
from ledger.domain.corporate_pool import CorporatePool
from ledger.domain.errors import InvalidCdr, InvalidInput, RuleViolation
from ledger.domain.ids import command_id
from ledger.domain.journal import account, transfer
from ledger.domain.payment import Charge, Hold
from ledger.domain.refund import (
    CardRefund,
    RefundShare,
    SessionRefunds,
    payer_key,
    plan_refund,
    refundable_parts,
    reversal,
)
from ledger.domain.session import ChargingSession
from ledger.domain.session_cdr import session_credit_cdr
from ledger.domain.session_cost import final_cost
from ledger.domain.settlement import charge_lines
from ledger.handlers.documents import issue_document
from ledger.handlers.lookups import require_tenant, wallet_of
from ledger.handlers.orders import issue_payment_command
from ledger.messages import PaymentResult, RefundRequested

# The card payments a session's driver share may have been collected by, in paying order:
# the pre-authorization's capture, then a post-paid charge of the session, of an overshoot
# past the hold, of what a declined hold was to cover, or of a capture the PSP refused.
DRIVER_CHARGE_PURPOSES: tuple[str, ...] = (
    "session", "overshoot", "declined_hold", "failed_capture",
)


@dataclass(frozen=True, slots=True)
class CardPayment:
    """Money the PSP collected for one payer's share: what a refund goes back through."""

    key: str  # "hold:<reference>" or "charge:<purpose>:<reference>"
    payer_key: str
    psp_reference: str
    collected: Decimal
    receivable: str  # the account the collection settled


def handle_refund_requested(message: RefundRequested, batch: Batch) -> None:
    tenant = require_tenant(batch, message.tenant_id, message.occurred_at)
    if message.currency != tenant["currency"]:
        raise InvalidInput(f"refund in {message.currency}, tenant bills in "
                           f"{tenant['currency']}")
    tx = message.session_id
    session = batch.get(ChargingSession, ChargingSession.create_id(message.tenant_id, tx))
    if session is None:
        raise RuleViolation(f"unknown session {tx!r}: nothing to refund")
    settlement = session.settlement
    if settlement is None:
        raise RuleViolation(f"session {tx!r} is not settled yet: it can be refunded once "
                            "it is billed")
    refunds = batch.get(SessionRefunds, SessionRefunds.create_id(message.tenant_id, tx))
    payments = _card_payments(session, settlement["charged_to"], batch)
    collected: dict[str, Decimal] = {}
    for payment in payments:
        collected[payment.payer_key] = collected.get(payment.payer_key, Decimal(0)) + (
            payment.collected)
    for row in settlement["charged_to"]:  # a card payer the PSP collected nothing from
        if row["payer"] in ("driver", "terminal"):
            collected.setdefault(payer_key(row["payer"], row["id"]), Decimal(0))
    by_payer = refunds.by_payer if refunds is not None else {}
    parts = refundable_parts(settlement["charged_to"], collected, by_payer)
    lines = charge_lines(final_cost(session))
    shares = plan_refund(lines, parts, message.amount)  # refuses with the reason

    if refunds is None:
        refunds = SessionRefunds(tenant_id=message.tenant_id, transaction_id=tx,
                                 currency=lines.currency)
        batch.add(refunds)
    refund_id = message.event_id
    entries: list[dict[str, object]] = []
    credit_notes: list[str] = []
    through: dict[str, str] = {}
    for share in shares:
        number = issue_document(
            batch, message.tenant_id, "credit_note",
            reference=_corrected_document(session, settlement, share, batch),
            bill_to=_bill_to(share), currency=lines.currency, issued_at=message.occurred_at,
            lines=share.lines, description=f"Refund of charging session {tx}: {message.reason}",
        )
        credit_notes.append(number)
        # The entry names the session and its credit note: the finance desk dates it by the
        # credit note and lists it with the session.
        entry = reversal(f"refund:{message.tenant_id}:{tx}:{number}",
                         f"refund of session {tx} to {share.key} ({number})",
                         _account_of(share), share)
        if share.payer == "wallet":
            wallet = wallet_of(message.tenant_id, share.payer_id, lines.currency, batch)
            wallet.credit(share.amount, "refund", f"{tx}:{number}", [entry.to_dict()])
        else:
            entries.append(entry.to_dict())
        if share.payer in ("driver", "terminal"):
            own = [p for p in payments if p.payer_key == share.key]
            through.update(_refund_to_card(message, share, number, own, refunds, batch))
    everything_back = _everything_refunded(settlement["charged_to"], by_payer, shares)
    refunds.refund(
        refund_id=refund_id, currency=lines.currency,
        amount=sum((s.amount for s in shares), Decimal(0)), reason=message.reason,
        at=message.occurred_at,
        shares=[s.to_dict() for s in shares], payments=through, credit_notes=credit_notes,
        credit_cdr=(_credit_cdr(session, message)
                    if everything_back and not refunds.credit_cdr_issued else None),
        journal_entries=entries,
    )


def _credit_cdr(session: ChargingSession, message: RefundRequested) -> dict[str, Any] | None:
    """The credit CDR cancelling the session's CDR; None for a session whose CDR cannot be
    built (its price never reaches a roaming partner then either): the money still goes back."""
    try:
        return session_credit_cdr(session, message.occurred_at)
    except InvalidCdr:
        return None


def confirm_card_refund(refund: CardRefund, message: PaymentResult) -> None:
    """The PSP paid the refund out: the receivable the refund credited is settled from PSP
    clearing; or it refused, recorded with the reason (no money moved). A second answer or
    another amount is invalid input."""
    if refund.is_answered:
        raise InvalidInput(f"refund {refund.command_id} already answered")
    if message.amount != refund.amount:
        raise InvalidInput(f"refund answered for {message.amount}, asked {refund.amount}")
    if message.outcome == "refund_failed":
        refund.fail(message.request_id, message.reason or "refund failed")
        return
    entry = transfer(
        f"refund_paid:{refund.tenant_id}:{refund.transaction_id}:{refund.credit_note}:"
        f"{refund.payment_key}", refund.currency,
        f"refund of session {refund.transaction_id} paid out by the PSP", refund.receivable,
        account("psp_clearing"), refund.amount,
    )
    refund.confirm(message.psp_reference, [entry.to_dict()])


# ---------------------------------------------------------------- the money back
def _card_payments(
    session: ChargingSession, charged_to: list[dict[str, str]], batch: Batch
) -> list[CardPayment]:
    tenant_id, tx = session.tenant_id, session.transaction_id
    found: list[CardPayment] = []
    for row in charged_to:
        key = payer_key(row["payer"], row["id"])
        if row["payer"] == "terminal":
            receivable = account("driver_receivable", f"terminal:{row['id']}")
            hold = batch.get(Hold, Hold.create_id(tenant_id, f"terminal:{row['id']}"))
            found.extend(_captured(hold, key, receivable))
        elif row["payer"] == "driver":
            receivable = account("driver_receivable", row["id"])
            found.extend(_captured(batch.get(Hold, Hold.create_id(tenant_id, tx)), key,
                                   receivable))
            for purpose in DRIVER_CHARGE_PURPOSES:
                charge = batch.get(Charge, Charge.create_id(tenant_id, purpose, tx))
                if (charge is not None and charge.status == "succeeded"
                        and charge.psp_reference):
                    found.append(CardPayment(f"charge:{purpose}:{tx}", key,
                                             charge.psp_reference, charge.amount, receivable))
    return found


def _captured(hold: Hold | None, payer: str, receivable: str) -> list[CardPayment]:
    if hold is None or not hold.captured or not hold.psp_reference:
        return []
    return [CardPayment(f"hold:{hold.reference}", payer, hold.psp_reference, hold.captured,
                        receivable)]


def _refund_to_card(
    message: RefundRequested, share: RefundShare, credit_note: str,
    payments: list[CardPayment], refunds: SessionRefunds, batch: Batch,
) -> dict[str, str]:
    """One PSP refund per card payment the share goes back through, the last payment first
    (as the share itself), each up to what it collected and has not given back."""
    left = share.amount
    through: dict[str, str] = {}
    for payment in reversed(payments):
        room = payment.collected - refunds.by_payment.get(payment.key, Decimal(0))
        amount = min(left, room)
        if amount <= 0:
            continue
        cid = command_id(message.tenant_id, "refund", message.session_id, message.event_id,
                         payment.key)
        card_refund = CardRefund(
            tenant_id=message.tenant_id, command_id=cid, transaction_id=message.session_id,
            amount=amount, currency=message.currency, receivable=payment.receivable,
            psp_reference=payment.psp_reference, credit_note=credit_note,
            payment_key=payment.key,
        )
        batch.add(card_refund)
        issue_payment_command(
            batch, tenant_id=message.tenant_id, cid=cid, action="refund", amount=amount,
            currency=message.currency, token=None, reference=message.session_id,
            psp_reference=payment.psp_reference, at=message.occurred_at,
            key=f"{message.tenant_id}:{message.session_id}",
            subject={"kind": "card_refund", "id": card_refund.id.hex},
        )
        through[payment.key] = str(amount)
        left -= amount
        if left == 0:
            break
    assert left == 0, f"share {share.key} exceeds its card payments by {left}"
    return through


def _account_of(share: RefundShare) -> str:
    """The account the share's sale was debited to (for a wallet: its net effect)."""
    if share.payer == "wallet":
        return account("wallet", share.payer_id)
    if share.payer == "partner":
        return account("partner_receivable", share.payer_id)
    if share.payer == "terminal":
        return account("driver_receivable", f"terminal:{share.payer_id}")
    return account("driver_receivable", share.payer_id)


# ---------------------------------------------------------------- the documents
def _bill_to(share: RefundShare) -> str:
    return f"terminal:{share.payer_id}" if share.payer == "terminal" else share.payer_id


def _corrected_document(
    session: ChargingSession, settlement: dict[str, object], share: RefundShare, batch: Batch,
) -> str:
    """The number of the document the credit note corrects (see the module doc)."""
    if share.payer != "partner":
        return str(settlement.get("receipt_number") or session.transaction_id)
    terms = session.payer.partner if session.payer is not None else None
    assert terms is not None, "a partner share comes from the partner's terms"
    pool = batch.get(CorporatePool, CorporatePool.create_id(
        session.tenant_id, terms.partner_id, terms.period_start))
    if pool is not None and pool.invoice_number:
        return str(pool.invoice_number)
    return f"corporate:{terms.partner_id}:{terms.period_start.isoformat()}"


def _everything_refunded(
    charged_to: list[dict[str, str]], before: dict[str, Decimal],
    shares: tuple[RefundShare, ...],
) -> bool:
    """Every share paid with money has all of it back once this refund is done."""
    now = {s.key: s.amount for s in shares}
    for part in refundable_parts(charged_to, {}, before):
        if part.refunded + now.get(part.key, Decimal(0)) != part.paid:
            return False
    return True
