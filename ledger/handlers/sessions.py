"""Session events from the CSMS: record, decide who pays at start, watch limits, settle."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from ledger.application import Batch
from ledger.domain.driver_account import DriverAccount
from ledger.domain.errors import InvalidInput
from ledger.domain.ids import command_id
from ledger.domain.payer_rules import PayerContext, decide_payer
from ledger.domain.payment import Hold
from ledger.domain.schedule import Schedule
from ledger.domain.session import ChargingSession
from ledger.domain.session_cost import running_cost_incl_vat
from ledger.domain.wallet import Wallet
from ledger.handlers.config import config_as_of, require_tenant
from ledger.handlers.settle import settle_session
from ledger.limits import SESSION_SETTLE_GRACE_MINUTES
from ledger.messages import StopSessionRequested, TransactionEvent

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
        raise InvalidInput(f"unknown location {message.location_id!r}")
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
        raise InvalidInput(f"unknown tariff {tariff_id!r} at {at.isoformat()}")
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
    decision = decide_payer(
        PayerContext(
            location=location,
            # OCPP numbers EVSEs per charging station: "<charge point>:<evse id>" is unique.
            evse_id=f"{session.charge_point_id}:{session.evse_id}" if session.evse_id else None,
            terminal_reference=session.terminal_reference, terminal_hold=terminal_hold,
            driver_id=driver_id, driver=driver,
            driver_has_overdue_debt=bool(account and account.has_overdue_debt),
            tenant=tenant, tariff_hold_override=tariff.get("preauth_hold_amount"),
        )
    )
    session.resolve_payer({
        "billing_model": decision.billing_model,
        "driver_id": decision.driver_id,
        "payment_method_token": decision.payment_method_token,
        "hold_amount": decision.hold_amount,
        "refusal_reason": decision.refusal_reason,
        "tariff_id": tariff_id,
        "tariff_json": tariff["ocpi_tariff_json"],
        "time_zone": location["time_zone"],
        "currency": tenant["currency"],
        "driver": driver,
        "stop_threshold_percent": tenant["preauth_stop_threshold_percent"],
    })
    if decision.billing_model is None:
        request_stop(session, decision.refusal_reason or "nobody can pay", batch)
    elif decision.billing_model == "pre_authorization":
        from ledger.handlers.payments import request_hold

        request_hold(session, batch)


def request_stop(session: ChargingSession, reason: str, batch: Batch) -> None:
    """Ask the CSMS to stop the session: once per session, with the reason."""
    if session.stop_requested or session.ended_at is not None:
        return
    stop_id = command_id(session.tenant_id, "stop", session.transaction_id)
    session.request_stop(reason, stop_id)
    batch.issue(
        StopSessionRequested(
            event_id=stop_id, tenant_id=session.tenant_id,
            occurred_at=session.ordered_readings()[-1]["timestamp"], producer="evledger",
            transaction_id=session.transaction_id, location_id=session.location_id,
            charge_point_id=session.charge_point_id, reason=reason,
        ),
        key=f"{session.tenant_id}:{session.transaction_id}",
        subject={"kind": "session", "id": session.id.hex},
    )


def _watch_limits(session: ChargingSession, tenant: dict[str, Any], batch: Batch) -> None:
    """On each meter update: stop near a hold or a wallet balance; top a wallet up in time."""
    payer = session.payer
    assert payer is not None
    model = payer["billing_model"]
    if model not in ("pre_authorization", "ad_hoc_terminal", "wallet"):
        return
    now = session.ordered_readings()[-1]["timestamp"]
    cost = running_cost_incl_vat(session, now)
    if model != "ad_hoc_terminal" and payer["driver_id"]:
        # Session credit pays first at the end, so only the rest weighs on a hold or wallet.
        from ledger.handlers.vouchers import session_credit_available

        credit = session_credit_available(session, payer["driver_id"], payer["currency"], now,
                                          batch)
        cost = max(cost - credit, Decimal(0))
    threshold = Decimal(payer["stop_threshold_percent"]) / 100
    if model == "pre_authorization":
        hold_amount = Decimal(payer["hold_amount"])
        if cost >= hold_amount * threshold:
            request_stop(session, "pre-authorization limit reached", batch)
    elif model == "ad_hoc_terminal":
        hold = batch.get(Hold, Hold.create_id(session.tenant_id,
                                              "terminal:" + str(session.terminal_reference)))
        if hold is not None and cost >= hold.amount * threshold:
            request_stop(session, "terminal authorization limit reached", batch)
    else:
        from ledger.handlers.wallets import watch_wallet

        watch_wallet(session, cost, threshold, batch)


def _schedule_settlement(session: ChargingSession, batch: Batch) -> None:
    """Ended but a seqNo is missing: settle with what arrived after a grace period."""
    assert session.ended_at is not None
    schedule = schedule_of(session.tenant_id, batch)
    if not schedule.has("settle_session", session.transaction_id):
        schedule.schedule(
            session.ended_at + timedelta(minutes=SESSION_SETTLE_GRACE_MINUTES),
            "settle_session", session.transaction_id,
        )


def schedule_of(tenant_id: str, batch: Batch) -> Schedule:
    schedule = batch.get(Schedule, Schedule.create_id(tenant_id))
    if schedule is None:
        schedule = Schedule(tenant_id=tenant_id)
        batch.add(schedule)
    return schedule


def wallet_of(tenant_id: str, driver_id: str, currency: str, batch: Batch) -> Wallet:
    wallet = batch.get(Wallet, Wallet.create_id(tenant_id, driver_id))
    if wallet is None:
        wallet = Wallet(tenant_id=tenant_id, driver_id=driver_id, currency=currency)
        batch.add(wallet)
    return wallet
