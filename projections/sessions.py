"""Sessions read model: one row per charging session, and who was charged what for it.

A session row appears when the session opens (status `open`), learns its billing model when
the payer is decided, and gets its totals, receipt and cost when it settles (`settled`).
Amounts are the settlement's rounded totals, as decimal text at the currency's exponent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.session import ChargingSession
from projections.changes import RowChange, event_class
from projections.identities import Identities, identity_for
from projections.sql import (
    SESSION_OPENED,
    SESSION_PAYER,
    SESSION_PAYER_RESOLVED,
    SESSION_SETTLED,
    SESSION_STOP_REQUESTED,
)
from projections.values import amount_text, canonical_json, instant_text, optional_text


def session_opened(event: Any, identities: Identities) -> list[RowChange]:
    return [
        RowChange(
            SESSION_OPENED,
            {
                "tenant_id": event.tenant_id,
                "session_id": event.transaction_id,
                "aggregate_id": event.originator_id.hex,
                "location_id": event.location_id,
                "charge_point_id": event.charge_point_id,
            },
        )
    ]


def payer_resolved(event: Any, identities: Identities) -> list[RowChange]:
    identity = identity_for(identities, event)
    payer: dict[str, Any] = event.payer
    return [
        RowChange(
            SESSION_PAYER_RESOLVED,
            {
                "tenant_id": identity.tenant_id,
                "session_id": identity.natural_key,
                "billing_model": optional_text(payer.get("billing_model")),
                "driver_id": optional_text(payer.get("driver_id")),
            },
        )
    ]


def stop_requested(event: Any, identities: Identities) -> list[RowChange]:
    identity = identity_for(identities, event)
    return [
        RowChange(
            SESSION_STOP_REQUESTED,
            {
                "tenant_id": identity.tenant_id,
                "session_id": identity.natural_key,
                "stop_reason": str(event.reason),
            },
        )
    ]


def settled(event: Any, identities: Identities) -> list[RowChange]:
    identity = identity_for(identities, event)
    settlement: dict[str, Any] = event.settlement
    currency = str(settlement["currency"])
    key = {"tenant_id": identity.tenant_id, "session_id": identity.natural_key}
    changes = [
        RowChange(
            SESSION_SETTLED,
            {
                **key,
                "billing_model": str(settlement["billing_model"]),
                "driver_id": optional_text(settlement.get("driver_id")),
                "currency": currency,
                "total_excl_vat": amount_text(settlement["total_excl_vat"], currency),
                "total_vat": amount_text(settlement["total_vat"], currency),
                "total_incl_vat": amount_text(settlement["total_incl_vat"], currency),
                "receipt_number": optional_text(settlement.get("receipt_number")),
                "ended_at": instant_text(settlement.get("ended_at")),
                "cost_json": canonical_json(settlement.get("cost")),
            },
        )
    ]
    for seq, share in enumerate(settlement.get("charged_to") or []):
        changes.append(
            RowChange(
                SESSION_PAYER,
                {
                    **key,
                    "seq": seq,
                    "payer": str(share["payer"]),
                    "payer_id": str(share["id"]),
                    "amount_incl_vat": amount_text(share["amount_incl_vat"], currency),
                },
            )
        )
    return changes


HANDLERS: dict[type, Callable[[Any, Identities], list[RowChange]]] = {
    event_class(ChargingSession, "Opened"): session_opened,
    event_class(ChargingSession, "PayerResolved"): payer_resolved,
    event_class(ChargingSession, "StopRequested"): stop_requested,
    event_class(ChargingSession, "Settled"): settled,
}
