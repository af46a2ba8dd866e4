"""Domain events as the projection sees them: triggered on real aggregates, then stored and
read back through the ledger's own mapper (so Decimals, datetimes and UUIDs arrive exactly
as they do from the event store)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.domain import Aggregate

from ledger.application import Ledger
from ledger.domain.journal import sale, transfer
from projections.identities import Identities, Identity, identity_of

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_LEDGER = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def stored(*aggregates: Aggregate) -> list[Any]:
    """The pending events of `aggregates`, round-tripped through the ledger's mapper."""
    events = [e for aggregate in aggregates for e in aggregate.collect_events()]
    return [_LEDGER.mapper.to_domain_event(_LEDGER.mapper.to_stored_event(e)) for e in events]


def identities_of(events: list[Any]) -> Identities:
    found: dict[Any, Identity] = {}
    for event in events:
        identity = identity_of(event)
        if identity is not None:
            found[event.originator_id] = identity
    return found


def session_sale(tx: str, debit: str, net: str, vat: str) -> dict[str, Any]:
    return sale(f"session:{tx}", "EUR", f"session {tx}", debit,
                {Decimal(19): Decimal(net)}, {Decimal(19): Decimal(vat)}).to_dict()


def card_payment(entry_id: str, credit: str, amount: str) -> dict[str, Any]:
    return transfer(entry_id, "EUR", "paid by card", "psp_clearing", credit,
                    Decimal(amount)).to_dict()
