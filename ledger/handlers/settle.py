"""Settling a finished session under its billing model: price, receipt, journal, payments."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger.application import Batch
from ledger.domain.invoice import InvoiceSeries, document
from ledger.domain.journal import JournalEntry, account, sale, transfer
from ledger.domain.payment import Hold
from ledger.domain.session import ChargingSession
from ledger.domain.session_cost import final_cost
from ledger.domain.settlement import ChargeLines, charge_lines, split_gross


def settle_session(session: ChargingSession, tenant: dict[str, Any], batch: Batch) -> None:
    from ledger.handlers.payments import resolve_hold
    from ledger.handlers.sessions import wallet_of

    payer = session.payer
    assert payer is not None and session.ended_at is not None and not session.is_settled
    cost = final_cost(session)
    lines = charge_lines(cost)
    currency = cost.currency
    gross = lines.gross
    model = payer["billing_model"]
    driver_id: str | None = payer["driver_id"]
    tx = session.transaction_id
    entry_id = f"session:{session.tenant_id}:{tx}"
    entries: list[JournalEntry] = []
    charged_to: list[dict[str, str]] = []
    receipt_to: str | None = None

    if model is None:
        # Nobody could pay at start (refused); the energy delivered before the stop still
        # has a cost: a known driver with a card is billed post-paid, otherwise the
        # operator absorbs it. Both are reported under the model that bore the cost.
        has_card = bool(driver_id and payer.get("payment_method_token"))
        model = "post_paid" if has_card else "open_access"

    # -- Vouchers (BILLING_RULES "Who pays": session credit pays the driver's own share
    # before 4-5; ledger/handlers/vouchers.py). Each voucher books Dr its value account /
    # Cr driver_receivable; the per-session model below pays only `due`, the rest.
    due = gross
    if model in ("post_paid", "pre_authorization", "wallet") and driver_id is not None:
        from ledger.handlers.vouchers import apply_session_credit

        for code, paid in apply_session_credit(session, driver_id, gross, currency, batch):
            charged_to.append(_share("voucher", code, paid))
            due -= paid
    # -- end vouchers

    if model == "open_access":
        entries.append(_sale(entry_id, lines, account("operator_absorbed_cost"), tx))
        charged_to.append(_share("operator", session.location_id, gross))
        if session.terminal_reference:
            # Free charging wins over a card tapped at the terminal (payer rule 1): the
            # whole authorization goes back to the card.
            hold = _unused_terminal_hold(session, batch)
            if hold is not None:
                resolve_hold(hold, Decimal(0), session.ended_at, batch)
    elif model == "post_paid":
        assert driver_id is not None
        receivable = account("driver_receivable", driver_id)
        entries.append(_sale(entry_id, lines, receivable, tx))
        charged_to.append(_share("driver", driver_id, due))
        receipt_to = driver_id
        if due > 0:
            _charge_card(batch, session, tenant, "session", due, receivable)
    elif model == "wallet":
        assert driver_id is not None
        wallet = wallet_of(session.tenant_id, driver_id, currency, batch)
        if due == gross:
            entry = _sale(entry_id, lines, account("wallet", driver_id), tx)
        else:  # (vouchers) paid part: sold to the receivable, the wallet pays the rest
            receivable = account("driver_receivable", driver_id)
            entries.append(_sale(entry_id, lines, receivable, tx))
            entry = transfer(f"{entry_id}:wallet", currency, f"session {tx} from wallet",
                             account("wallet", driver_id), receivable, due)
        if due:  # nothing left to pay (vouchers, a free session): no debit at all
            wallet.debit(due, "session", tx, [entry.to_dict()])
        charged_to.append(_share("wallet", driver_id, due))
        receipt_to = driver_id
        from ledger.handlers.wallets import top_up_if_low

        top_up_if_low(wallet, payer.get("driver") or {}, tenant, session.ended_at, batch)
    elif model == "pre_authorization":
        assert driver_id is not None
        receivable = account("driver_receivable", driver_id)
        entries.append(_sale(entry_id, lines, receivable, tx))
        charged_to.append(_share("driver", driver_id, due))
        receipt_to = driver_id
        hold = batch.get(Hold, Hold.create_id(session.tenant_id, tx))
        assert hold is not None, "a pre-authorized session requested its hold at start"
        covered, overshoot = split_gross(
            due, hold.amount if hold.authorization != "declined" else Decimal(0)
        )
        resolve_hold(hold, covered, session.ended_at, batch)
        if overshoot > 0:
            _charge_card(batch, session, tenant, "overshoot", overshoot, receivable)
    elif model == "ad_hoc_terminal":
        reference = str(session.terminal_reference)
        receivable = account("driver_receivable", f"terminal:{reference}")
        entries.append(_sale(entry_id, lines, receivable, tx))
        receipt_to = f"terminal:{reference}"
        # An authorization pays for one session: a second session naming the same
        # reference finds it used, and the operator absorbs that session.
        hold = _unused_terminal_hold(session, batch)
        covered, overshoot = split_gross(gross, hold.amount if hold is not None else Decimal(0))
        if hold is not None:
            resolve_hold(hold, covered, session.ended_at, batch)
        if covered > 0 or overshoot == 0:
            charged_to.append(_share("terminal", reference, covered))
        if overshoot > 0:
            # No account stands behind a terminal payment: past the authorization, the
            # operator absorbs the rest (documented in docs/billing-decisions.md).
            entries.append(
                transfer(f"{entry_id}:absorbed", currency, f"terminal overshoot {tx}",
                         account("operator_absorbed_cost"), receivable, overshoot)
            )
            charged_to.append(_share("operator", session.location_id, overshoot))
    else:  # pragma: no cover - corporate and subscriptions settle in their own modules
        raise AssertionError(f"no settlement for billing model {model!r}")

    if due == 0 and gross > 0:  # (vouchers) paid in full: no zero row for the model
        charged_to = [share for share in charged_to if share["payer"] == "voucher"]

    receipt_number = None
    if receipt_to is not None:
        receipt_number = issue_document(
            batch, session.tenant_id, "session_receipt", reference=tx, bill_to=receipt_to,
            currency=currency, issued_at=session.ended_at, lines=lines,
            description=f"Charging session {tx}",
        )
    session.settle(
        {
            "billing_model": model,
            "currency": currency,
            "total_excl_vat": lines.net,
            "total_vat": lines.vat,
            "total_incl_vat": gross,
            "charged_to": charged_to,
            "receipt_number": receipt_number,
            "cost": cost.ocpi,
            "driver_id": driver_id,
            "ended_at": session.ended_at,
        },
        [e.to_dict() for e in entries if _moves_money(e)],
    )


def _charge_card(
    batch: Batch, session: ChargingSession, tenant: dict[str, Any], purpose: str,
    amount: Decimal, receivable: str,
) -> None:
    """Post-paid: charge the driver's card for `amount`, retried on the tenant's schedule."""
    from ledger.handlers.payments import open_charge

    payer = session.payer
    assert payer is not None and session.ended_at is not None
    open_charge(
        batch, session.tenant_id, tenant["retry_schedule_hours"], purpose=purpose,
        reference=session.transaction_id, driver_id=payer["driver_id"], amount=amount,
        currency=payer["currency"], token=payer["payment_method_token"],
        settles_account=receivable, at=session.ended_at,
    )


def _unused_terminal_hold(session: ChargingSession, batch: Batch) -> Hold | None:
    """The terminal's authorization for this session, unless another session used it."""
    reference = "terminal:" + str(session.terminal_reference)
    hold = batch.get(Hold, Hold.create_id(session.tenant_id, reference))
    if hold is None or hold.is_resolution_decided:
        return None
    return hold


def _moves_money(entry: JournalEntry) -> bool:
    return any(p.amount for p in entry.postings)


def _sale(entry_id: str, lines: ChargeLines, debit: str, tx: str) -> JournalEntry:
    return sale(entry_id, lines.currency, f"session {tx}", debit, lines.net_by_rate(),
                lines.vat_by_rate())


def _share(payer: str, payer_id: str, amount: Decimal) -> dict[str, str]:
    return {"payer": payer, "id": payer_id, "amount_incl_vat": str(amount)}


def issue_document(
    batch: Batch,
    tenant_id: str,
    series: str,
    *,
    reference: str,
    bill_to: str,
    currency: str,
    issued_at: Any,
    lines: ChargeLines,
    description: str,
) -> str:
    """Issue the next document of `series` for `reference`; the caller issues it once."""
    series_aggregate = batch.get(InvoiceSeries, InvoiceSeries.create_id(tenant_id, series))
    if series_aggregate is None:
        series_aggregate = InvoiceSeries(tenant_id=tenant_id, series=series)
        batch.add(series_aggregate)
    number = series_aggregate.next_number()
    series_aggregate.issue(
        number,
        document(
            kind=series, reference=reference, bill_to=bill_to, currency=currency,
            issued_at=issued_at, lines=[line.to_dict(description) for line in lines.lines],
        ),
    )
    return number
