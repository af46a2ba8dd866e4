"""Settling a finished session: read what each payer may give, plan, carry the plan out.

The plan (`ledger.domain.settlement_plan`) decides every share, journal entry and payment;
this handler only reads the aggregates it needs (the partner's pool, the driver's session
credit, the hold) and carries the plan out on them, with the receipt and the settled session.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger.batch import Batch
from ledger.domain.billing_model import BillingModel
from ledger.domain.payment import Hold
from ledger.domain.session import ChargingSession
from ledger.domain.session_cost import final_cost
from ledger.domain.settlement import charge_lines
from ledger.domain.settlement_plan import (
    HoldState,
    SettlementInputs,
    SettlementPlan,
    paying_model,
    plan_settlement,
)
from ledger.handlers.corporate import book_partner_share, partner_capacity_now
from ledger.handlers.cost_updates import send_final_cost
from ledger.handlers.documents import issue_document
from ledger.handlers.lookups import wallet_of
from ledger.handlers.orders import open_charge, resolve_hold
from ledger.handlers.subscriptions import allowance_left_for, record_allowance_use
from ledger.handlers.vouchers import session_credit_sources, use_session_credit
from ledger.handlers.wallets import top_up_if_low


def settle_session(session: ChargingSession, tenant: dict[str, Any], batch: Batch) -> None:
    payer = session.payer
    assert payer is not None and session.ended_at is not None and not session.is_settled
    cost = final_cost(session)
    lines = charge_lines(cost)
    tx = session.transaction_id
    driver_id = payer.driver_id
    own_model = paying_model(payer)
    hold = _hold_of(session, own_model, batch)
    plan = plan_settlement(
        SettlementInputs(
            tenant_id=session.tenant_id, transaction_id=tx, location_id=session.location_id,
            entry_id=f"session:{session.tenant_id}:{tx}", payer=payer, lines=lines,
            partner_capacity=(
                partner_capacity_now(batch, session.tenant_id, driver_id, payer.partner)
                if payer.partner is not None and driver_id is not None else None
            ),
            vouchers=(
                session_credit_sources(session, driver_id, cost.currency, session.ended_at,
                                       batch)
                if driver_id is not None else ()
            ),
            hold=None if hold is None else HoldState(
                hold.amount if hold.authorization != "declined" else Decimal(0)
            ),
            terminal_reference=session.terminal_reference,
            allowance_left=(
                allowance_left_for(batch, session.tenant_id, driver_id, payer.subscription)
                if payer.subscription is not None and driver_id is not None else None
            ),
            energy_kwh=Decimal(cost.ocpi["total_energy"]),
        )
    )
    _carry_out(session, plan, hold, tenant, batch)
    receipt_number = None
    if plan.receipt_to is not None:
        receipt_number = issue_document(
            batch, session.tenant_id, "session_receipt", reference=tx, bill_to=plan.receipt_to,
            currency=lines.currency, issued_at=session.ended_at, lines=plan.receipt_lines,
            description=f"Charging session {tx}",
        )
    settlement: dict[str, Any] = {
        "billing_model": plan.billing_model.value,
        "currency": lines.currency,
        "total_excl_vat": lines.net,
        "total_vat": lines.vat,
        "total_incl_vat": lines.gross,
        "charged_to": [share.to_dict() for share in plan.charged_to],
        "receipt_number": receipt_number,
        "cost": cost.ocpi,
        "driver_id": driver_id,
        "ended_at": session.ended_at,
    }
    session.settle(settlement, [entry.to_dict() for entry in plan.entries])
    send_final_cost(session, settlement, tenant, batch)


def _carry_out(
    session: ChargingSession, plan: SettlementPlan, hold: Hold | None,
    tenant: dict[str, Any], batch: Batch,
) -> None:
    payer = session.payer
    assert payer is not None and session.ended_at is not None
    at = session.ended_at
    if plan.partner is not None:
        assert payer.partner is not None and payer.driver_id is not None
        book_partner_share(
            batch, session.tenant_id, session.transaction_id, payer.driver_id, payer.partner,
            plan.partner.share.currency, plan.partner.share, plan.partner.billed,
        )
    if payer.subscription is not None and plan.allowance is not None:
        assert payer.driver_id is not None
        record_allowance_use(
            batch, session.tenant_id, payer.driver_id, session.transaction_id,
            payer.subscription, plan.allowance_kwh, plan.allowance.gross,
            plan.allowance_fraction > 0, plan.postpaid_usage,
        )
    if plan.voucher_uses:
        assert payer.driver_id is not None
        use_session_credit(session, payer.driver_id, plan.voucher_uses, batch)
    if plan.wallet_debit is not None:
        assert payer.driver_id is not None
        wallet = wallet_of(session.tenant_id, payer.driver_id, payer.currency, batch)
        wallet.debit(plan.wallet_debit.amount, "session", session.transaction_id,
                     [plan.wallet_debit.entry.to_dict()])
    if paying_model(payer) == BillingModel.WALLET and payer.driver_id is not None:
        wallet = wallet_of(session.tenant_id, payer.driver_id, payer.currency, batch)
        top_up_if_low(wallet, payer.driver, at, batch)
    if hold is not None and plan.hold_capture is not None:
        resolve_hold(hold, plan.hold_capture, at, batch)
    if plan.card_charge is not None:
        assert payer.driver_id is not None
        open_charge(
            batch, session.tenant_id, tenant["retry_schedule_hours"],
            purpose=plan.card_charge.purpose, reference=session.transaction_id,
            driver_id=payer.driver_id, amount=plan.card_charge.amount, currency=payer.currency,
            token=payer.payment_method_token,
            settles_account=plan.card_charge.receivable, at=at,
        )


def _hold_of(session: ChargingSession, model: BillingModel, batch: Batch) -> Hold | None:
    """The hold that may pay this session: its pre-authorization, or the terminal's
    authorization unless another session used it (one authorization pays one session)."""
    if model == BillingModel.PRE_AUTHORIZATION:
        return batch.get(Hold, Hold.create_id(session.tenant_id, session.transaction_id))
    if session.terminal_reference is None:
        return None
    hold = batch.get(Hold, Hold.create_id(session.tenant_id,
                                          "terminal:" + session.terminal_reference))
    if hold is None or hold.is_resolution_decided:
        return None
    return hold
