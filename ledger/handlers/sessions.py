"""Session events from the CSMS: record, decide who pays at start, watch limits, settle."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from ledger.batch import Batch
from ledger.domain.billing_model import BillingModel
from ledger.domain.driver_account import DriverAccount
from ledger.domain.errors import InvalidInput
from ledger.domain.payer import DriverTerms, Payer
from ledger.domain.payer_rules import PayerContext, decide_payer
from ledger.domain.payment import Hold
from ledger.domain.session import ChargingSession
from ledger.domain.session_cost import running_cost_incl_vat
from ledger.domain.settlement import charge_lines_of_gross
from ledger.domain.settlement_plan import partner_cover
from ledger.handlers.corporate import partner_capacity_now, partner_cover_at_start
from ledger.handlers.cost_updates import send_running_cost
from ledger.handlers.lookups import config_as_of, require_tenant, schedule_of
from ledger.handlers.orders import request_hold, request_stop
from ledger.handlers.prerequisites import wait_for, wait_or_go_without
from ledger.handlers.settle import settle_session
from ledger.handlers.subscriptions import allowance_left_for, subscription_cover_at_start
from ledger.handlers.vouchers import session_credit_available
from ledger.handlers.wallets import watch_wallet
from ledger.limits import SESSION_SETTLE_GRACE_MINUTES
from ledger.messages import TransactionEvent

ENERGY_MEASURAND = "Energy.Active.Import.Register"
POWER_MEASURAND = "Power.Active.Import"
CURRENT_MEASURAND = "Current.Import"
UNIT_SCALE: dict[str, Decimal] = {"Wh": Decimal(1), "kWh": Decimal(1000), "W": Decimal(1),
                                  "kW": Decimal(1000), "A": Decimal(1)}


def reading_of(message: TransactionEvent) -> dict[str, Any]:
    """The facts of one TransactionEvent that billing needs, in plain JSON-able values."""
    tx = message.transaction
    samples: list[dict[str, Any]] = []
    for meter_value in tx.meterValue:
        energy_wh: Decimal | None = None
        power_w: Decimal | None = None
        current_a: Decimal | None = None
        for sampled in meter_value.sampledValue:
            unit = sampled.unitOfMeasure
            scale = UNIT_SCALE.get(unit.unit if unit else "Wh")
            if scale is None:
                raise InvalidInput(f"unsupported unit {unit.unit if unit else None!r}")
            value = sampled.value * scale * (Decimal(10) ** (unit.multiplier if unit else 0))
            measurand = sampled.measurand or ENERGY_MEASURAND
            if measurand == ENERGY_MEASURAND and sampled.phase is None:
                energy_wh = value
            elif measurand == POWER_MEASURAND and sampled.phase is None:
                power_w = value
            elif measurand == CURRENT_MEASURAND:
                # OCPI compares current summed over phases.
                current_a = (current_a or Decimal(0)) + value
        samples.append({"timestamp": meter_value.timestamp, "energy_wh": energy_wh,
                        "power_w": power_w, "current_a": current_a})
    return {
        "seq_no": tx.seqNo,
        "event_type": tx.eventType,
        "timestamp": tx.timestamp,
        "charging_state": tx.transactionInfo.chargingState,
        "stopped_reason": tx.transactionInfo.stoppedReason,
        "samples": samples,
        "id_token": tx.idToken.idToken if tx.idToken else None,
        "evse_id": str(tx.evse.id) if tx.evse else None,
        "terminal_reference": message.terminal_reference,
        "tariff_id": message.tariff_id,
        "event_id": message.event_id,
    }


def handle_transaction_event(message: TransactionEvent, batch: Batch) -> None:
    tx = message.transaction
    tenant = require_tenant(batch, message.tenant_id, tx.timestamp)
    location = config_as_of(
        batch, "location", message.tenant_id, message.location_id, tx.timestamp
    )
    if location is None:
        wait_for("location", message.tenant_id, message.location_id,
                f"unknown location {message.location_id!r}", InvalidInput)
    transaction_id = tx.transactionInfo.transactionId
    session_id = ChargingSession.create_id(message.tenant_id, transaction_id)
    session = batch.get(ChargingSession, session_id)
    if session is None:
        session = ChargingSession(
            tenant_id=message.tenant_id, transaction_id=transaction_id,
            location_id=message.location_id, charge_point_id=message.charge_point_id,
        )
        batch.add(session)
    elif session.location_id != message.location_id:
        raise InvalidInput(
            f"transaction {transaction_id} moved from {session.location_id} "
            f"to {message.location_id}"
        )
    if session.has_seq_no(tx.seqNo):
        return  # the same OCPP message again (a station retry): nothing new
    if session.is_settled:
        raise InvalidInput(f"transaction {transaction_id} is settled; seqNo {tx.seqNo} late")
    session.record_reading(reading_of(message))
    if session.is_started and session.payer is None:
        _start(session, tenant, location, batch)
    if session.payer is None:
        return
    if session.ended_at is None:
        _watch_limits(session, tenant, batch)
    elif session.is_complete:
        settle_session(session, tenant, batch)
    else:
        _schedule_settlement(session, batch)


def _start(
    session: ChargingSession, tenant: dict[str, Any], location: dict[str, Any], batch: Batch
) -> None:
    assert session.started_at is not None
    at = session.started_at
    tariff_id = session.tariff_id_hint or location["tariff_id"]
    tariff = config_as_of(batch, "tariff", session.tenant_id, tariff_id, at)
    if tariff is None:
        wait_for("tariff", session.tenant_id, tariff_id,
                f"unknown tariff {tariff_id!r} at {at.isoformat()}", InvalidInput)
    driver_id: str | None = None
    driver: dict[str, Any] | None = None
    if session.id_token:
        token = config_as_of(batch, "id_token", session.tenant_id, session.id_token, at)
        if token is not None:
            driver_id = token["driver_id"]
            driver = config_as_of(batch, "driver", session.tenant_id, driver_id, at)
    account = (
        batch.get(DriverAccount, DriverAccount.create_id(session.tenant_id, driver_id))
        if driver_id else None
    )
    terminal_hold = None
    if session.terminal_reference:
        hold = batch.get(Hold, Hold.create_id(session.tenant_id,
                                              "terminal:" + session.terminal_reference))
        terminal_hold = hold.amount if hold else None
    partner = subscription = None
    if driver_id is not None and driver is not None:
        partner = partner_cover_at_start(batch, tenant, session.tenant_id, driver_id, location,
                                         at)
        subscription = subscription_cover_at_start(batch, tenant, session.tenant_id, driver_id,
                                                   session.location_id, at)
    decision = decide_payer(
        PayerContext(
            location=location,
            # OCPP numbers EVSEs per charging station: "<charge point>:<evse id>" is unique.
            evse_id=f"{session.charge_point_id}:{session.evse_id}" if session.evse_id else None,
            terminal_reference=session.terminal_reference, terminal_hold=terminal_hold,
            driver_id=driver_id, driver=driver,
            driver_has_overdue_debt=bool(account and account.has_overdue_debt),
            tenant=tenant, tariff_hold_override=tariff.get("preauth_hold_amount"),
            partner=partner, subscription=subscription,
        )
    )
    _wait_for_the_payer(session, decision.billing_model, driver, terminal_hold)
    if decision.subscription is not None and decision.subscription.plan.overage_tariff_id:
        # A plan with a tariff of its own prices its subscribers' sessions with it; the
        # allowance covers its share of that price (docs/billing-decisions.md).
        plan_tariff_id = decision.subscription.plan.overage_tariff_id
        plan_tariff = config_as_of(batch, "tariff", session.tenant_id, plan_tariff_id, at)
        if plan_tariff is not None:
            tariff_id, tariff = plan_tariff_id, plan_tariff
    payer = Payer(
        billing_model=decision.billing_model,
        own_model=decision.own_model,
        driver_id=decision.driver_id,
        payment_method_token=decision.payment_method_token,
        hold_amount=decision.hold_amount,
        refusal_reason=decision.refusal_reason,
        tariff_id=tariff_id,
        tariff_json=tariff["ocpi_tariff_json"],
        time_zone=location["time_zone"],
        currency=tenant["currency"],
        driver=DriverTerms.from_settings(driver),
        stop_threshold_percent=Decimal(tenant["preauth_stop_threshold_percent"]),
        partner=decision.partner,
        subscription=decision.subscription,
        # LocationConfigured v2; configuration stored from v1 has no such key.
        location_country=location.get("country_code"),
    )
    session.resolve_payer(payer.to_record())
    if decision.billing_model is None:
        request_stop(session, decision.refusal_reason or "nobody can pay", batch)
    elif decision.own_model == BillingModel.PRE_AUTHORIZATION:
        request_hold(session, batch)


def _wait_for_the_payer(
    session: ChargingSession, model: BillingModel | None, driver: dict[str, Any] | None,
    terminal_hold: Decimal | None,
) -> None:
    """What decides the payer may be on its way on another topic: the driver of the id token
    (DriverConfigured), the terminal's authorization. Waited for only when the decision
    needs it; once the wait is over the session is decided without it, as before parking:
    nobody pays for an unknown token (the session is stopped), a terminal's hold unknown."""
    if model is None and driver is None and session.id_token:
        wait_or_go_without("id_token", session.tenant_id, session.id_token,
                           f"unknown id token {session.id_token!r}")
    if model == BillingModel.AD_HOC_TERMINAL and terminal_hold is None:
        assert session.terminal_reference is not None
        wait_or_go_without("terminal", session.tenant_id, session.terminal_reference,
                           f"no TerminalAuthorized for {session.terminal_reference!r}")


def _watch_limits(session: ChargingSession, tenant: dict[str, Any], batch: Batch) -> None:
    """On each meter update: tell the CSMS what the driver pays so far; stop near a hold or
    a wallet balance; top a wallet up in time.

    Only the driver's own share weighs: what the partner may still cover and the plan's
    allowance come off the running cost first (they pay first at the end), and for the
    limits the driver's session credit too."""
    payer = session.payer
    assert payer is not None
    now = session.ordered_readings()[-1]["timestamp"]
    cost = running_cost_incl_vat(session, now)
    if payer.partner is not None and payer.driver_id is not None:
        capacity = partner_capacity_now(batch, session.tenant_id, payer.driver_id, payer.partner)
        covered = partner_cover(
            charge_lines_of_gross(cost, payer.currency), capacity,
            payer.partner.discount_percent,
        )
        cost = max(cost - covered.share.gross, Decimal(0))
    if payer.subscription is not None and payer.driver_id is not None:
        cost = max(cost - _allowance_cover_now(batch, session, payer, cost), Decimal(0))
    send_running_cost(session, cost, now, tenant, batch)
    model = payer.own_model or payer.billing_model
    if model not in WATCHED_MODELS:
        return
    if model != BillingModel.AD_HOC_TERMINAL and payer.driver_id:
        credit = session_credit_available(session, payer.driver_id, payer.currency, now, batch)
        cost = max(cost - credit, Decimal(0))
    threshold = payer.stop_threshold
    if model == BillingModel.PRE_AUTHORIZATION:
        assert payer.hold_amount is not None
        if cost >= payer.hold_amount * threshold:
            request_stop(session, "pre-authorization limit reached", batch)
    elif model == BillingModel.AD_HOC_TERMINAL:
        hold = batch.get(Hold, Hold.create_id(session.tenant_id,
                                              "terminal:" + str(session.terminal_reference)))
        if hold is not None and cost >= hold.amount * threshold:
            request_stop(session, "terminal authorization limit reached", batch)
    else:
        watch_wallet(session, cost, threshold, batch)


def _allowance_cover_now(
    batch: Batch, session: ChargingSession, payer: Payer, cost: Decimal
) -> Decimal:
    """What the plan's allowance would cover of the running cost. A kWh allowance is not
    weighed while the session runs (its pro rata share needs the final energy), so a session
    under a kWh-only plan is watched as if uncovered: a stop comes early, never late."""
    assert payer.subscription is not None and payer.driver_id is not None
    plan = payer.subscription.plan
    if plan.is_unlimited:
        return cost
    left = allowance_left_for(batch, session.tenant_id, payer.driver_id, payer.subscription)
    if left is None or plan.allowance_kwh is not None:
        return Decimal(0)
    return cost * left.fraction_of(Decimal(0), cost)


WATCHED_MODELS = frozenset(
    {BillingModel.PRE_AUTHORIZATION, BillingModel.AD_HOC_TERMINAL, BillingModel.WALLET}
)


def _schedule_settlement(session: ChargingSession, batch: Batch) -> None:
    """Ended but a seqNo is missing: settle with what arrived after a grace period."""
    assert session.ended_at is not None
    schedule = schedule_of(session.tenant_id, batch)
    if not schedule.has("settle_session", session.transaction_id):
        schedule.schedule(
            session.ended_at + timedelta(minutes=SESSION_SETTLE_GRACE_MINUTES),
            "settle_session", session.transaction_id,
        )
