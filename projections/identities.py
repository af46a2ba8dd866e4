"""Which tenant an aggregate belongs to, learnt from the event that created it.

A session's `Settled`, a wallet's `Debited` or an invoice series' `Issued` does not repeat
the tenant or the natural key (transaction id, driver id, series): the creation event has
them. The runner keeps them in `rm_aggregates` and hands the read models a lookup, so each
read model stays a pure function of (event, identities).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from projections.changes import RowChange
from projections.sql import UPSERT_AGGREGATE
from projections.values import ProjectionError, instant_text

# The natural key of the aggregates whose later events the read models project.
NATURAL_KEY_FIELDS: dict[str, str | tuple[str, ...]] = {
    "ChargingSession": "transaction_id",
    "Wallet": "driver_id",
    "InvoiceSeries": "series",
    "Charge": "reference",
    "Hold": "reference",
    "SessionRefunds": "transaction_id",
    # A partner's pool is one per period: "<partner_id>|<period start, ISO>".
    "CorporatePool": ("partner_id", "period_start"),
    # Configuration, one per kind and key: "<kind>|<key>", e.g. "partner|ptn-1".
    "EffectiveDated": ("kind", "key"),
}
NATURAL_KEY_SEPARATOR = "|"
# Aggregates complete in their creation event (one per inbound message, per batch, or per
# command): nothing later needs their tenant, so they are not remembered.
SINGLE_EVENT_KINDS: frozenset[str] = frozenset(
    {"ProcessedMessage", "ProcessedBatch", "DeadLetter", "Refusal", "OutboundCommand"}
)


@dataclass(frozen=True, slots=True)
class Identity:
    kind: str  # the aggregate class name, e.g. "ChargingSession"
    tenant_id: str
    natural_key: str | None


Identities = Mapping[UUID, Identity]


def aggregate_kind(event: object) -> str:
    """`ChargingSession` for `ChargingSession.Settled` (the event's enclosing class)."""
    return type(event).__qualname__.split(".")[0]


def identity_of(event: Any) -> Identity | None:
    """The identity a creation event establishes, or None for any other event."""
    if event.originator_version != 1:
        return None
    kind = aggregate_kind(event)
    tenant_id = getattr(event, "tenant_id", None)
    if kind in SINGLE_EVENT_KINDS or not isinstance(tenant_id, str):
        return None
    key_field = NATURAL_KEY_FIELDS.get(kind)
    if isinstance(key_field, tuple):
        return Identity(kind, tenant_id, NATURAL_KEY_SEPARATOR.join(
            str(instant_text(v) if isinstance(v, datetime) else v)
            for v in (getattr(event, f) for f in key_field)
        ))
    natural_key = getattr(event, key_field) if key_field else getattr(event, "key", None)
    return Identity(kind, tenant_id, None if natural_key is None else str(natural_key))


def remember(aggregate_id: UUID, identity: Identity) -> RowChange:
    return RowChange(
        UPSERT_AGGREGATE,
        {
            "aggregate_id": aggregate_id.hex,
            "kind": identity.kind,
            "tenant_id": identity.tenant_id,
            "natural_key": identity.natural_key,
        },
    )


def identity_for(identities: Identities, event: Any) -> Identity:
    """The identity of the event's aggregate; unknown means the log is not read in order."""
    identity = identities.get(event.originator_id)
    if identity is None:
        raise ProjectionError(
            f"{type(event).__qualname__} of aggregate {event.originator_id} arrived before "
            "the event that created it"
        )
    return identity
