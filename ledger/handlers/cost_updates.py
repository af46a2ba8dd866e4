"""What the driver pays, told to the CSMS: while charging (OCPP 2.0.1 I02, `CostUpdated`)
and in the end (I03, the total in the response to the last TransactionEvent).

Protocol, per session:
1. on a meter update, the driver's share of the running cost (what a partner or a plan's
   allowance may still cover left out) is rounded to the minor unit;
2. it is sent once it moved by the tenant's `cost_update_step` since the last update, or
   `cost_update_interval_s` after it (and changed); never more often, never lower than the
   last figure sent;
3. each update's id is derived from the session and its sequence number, so a batch applied
   again or a relay that crashes re-sends the same update, never a new one;
4. at settlement the final figure goes out with the full price (sequence after the last).
A tenant whose `cost_update_step` is 0 (the default) gets no cost updates at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger.batch import Batch
from ledger.domain.ids import command_id
from ledger.domain.money import round_to_minor_unit
from ledger.domain.outbox import carried_command
from ledger.domain.session import ChargingSession
from ledger.messages import COMMAND_PRODUCER, SessionCostUpdated, decimal_text, instant_text

# Shares that a sponsor or the operator pays: not the driver's cost.
SPONSOR_PAYERS = frozenset({"partner", "discount", "subscription", "operator"})


def send_running_cost(
    session: ChargingSession, driver_cost: Decimal, now: datetime, tenant: dict[str, Any],
    batch: Batch,
) -> None:
    payer = session.payer
    assert payer is not None and session.started_at is not None
    step = _step(tenant)
    if step == 0:
        return
    interval = timedelta(seconds=int(tenant.get("cost_update_interval_s", 300)))
    last = session.last_cost_update
    last_total = Decimal(0) if last is None else Decimal(last["total"])
    last_at: datetime = session.started_at if last is None else last["at"]
    total = max(round_to_minor_unit(driver_cost, payer.currency), last_total)
    moved = total - last_total >= step
    due = now - last_at >= interval and total != last_total
    if not (moved or due):
        return
    sequence = 0 if last is None else int(last["sequence"]) + 1
    _send(session, total, now, sequence, batch, final=False, full_price=None)


def send_final_cost(
    session: ChargingSession, settlement: dict[str, Any], tenant: dict[str, Any], batch: Batch
) -> None:
    assert session.ended_at is not None
    if _step(tenant) == 0:
        return
    driver_pays = sum(
        (Decimal(row["amount_incl_vat"]) for row in settlement["charged_to"]
         if row["payer"] not in SPONSOR_PAYERS),
        Decimal(0),
    )
    last = session.last_cost_update
    sequence = 0 if last is None else int(last["sequence"]) + 1
    _send(session, driver_pays, session.ended_at, sequence, batch, final=True,
          full_price=Decimal(settlement["total_incl_vat"]))


def _step(tenant: dict[str, Any]) -> Decimal:
    """The tenant's update step; 0 (the default) means the CSMS gets no cost updates."""
    return Decimal(tenant.get("cost_update_step") or 0)


def _send(
    session: ChargingSession, total: Decimal, at: datetime, sequence: int, batch: Batch, *,
    final: bool, full_price: Decimal | None,
) -> None:
    tx = session.transaction_id
    cid = command_id(session.tenant_id, "cost_update", tx, "final" if final else str(sequence))
    payload = cost_update_payload(session, cid, total, at, sequence, final, full_price)
    # Keyed by the transaction: a session's updates and its stop request share a partition.
    key = f"{session.tenant_id}:{tx}"
    carried = carried_command(SessionCostUpdated.type_name(), SessionCostUpdated.RECIPIENT,
                              key, payload)
    if session.tell_cost(total, at, sequence, cid, carried):
        batch.count_issued(session.tenant_id, cid)
    else:
        batch.issue(SessionCostUpdated.model_validate(payload), key=key,
                    subject={"kind": "session", "id": session.id.hex})


def cost_update_payload(
    session: ChargingSession, cid: str, total: Decimal, at: datetime, sequence: int,
    final: bool, full_price: Decimal | None,
) -> dict[str, Any]:
    """`SessionCostUpdated(...).model_dump(mode="json")`, written out: a meter update makes
    one, and the model's construction and dump were a third of what an update cost. Every
    value comes from a validated message or is rounded here; the relay validates it again
    before it encodes, and tests/unit/domain/test_cost_update_payload.py pins equality."""
    payer = session.payer
    assert payer is not None
    return {
        "event_id": cid, "tenant_id": session.tenant_id, "occurred_at": instant_text(at),
        "producer": COMMAND_PRODUCER, "schema_version": SessionCostUpdated.SCHEMA_VERSION,
        "transaction_id": session.transaction_id, "location_id": session.location_id,
        "charge_point_id": session.charge_point_id, "total_cost": decimal_text(total),
        "currency": payer.currency, "final": final,
        "full_price": None if full_price is None else decimal_text(full_price),
        "sequence": sequence,
    }
