"""Invoice parties read model: the seller and buyer data e-invoices need, effective-dated.

A tenant's configuration (TenantConfigured v3) names the seller, a partner's
(PartnerConfigured v3) the buyer. Every version is kept with its effective time, as the
ledger keeps them: an invoice shows each party as configured when it was issued
(`party_as_of`), and a later change of address never rewrites an issued invoice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ledger.domain.configuration import EffectiveDated
from projections.changes import RowChange, event_class
from projections.identities import NATURAL_KEY_SEPARATOR, Identities, identity_for
from projections.sql import INVOICE_PARTY_CONFIGURED
from projections.values import instant_text, optional_text

# Configuration kinds that are invoice parties: the tenant sells, its partners buy.
PARTY_KINDS = frozenset({"tenant", "partner"})
# The columns after the key, in the order of the table (and of `party_as_of`'s rows).
PARTY_FIELDS: tuple[str, ...] = (
    "legal_name", "vat_id", "address_street", "address_postcode", "address_city",
    "address_country", "invoice_email", "buyer_reference", "time_zone", "payment_terms",
)


def configuration_changed(event: Any, identities: Identities) -> list[RowChange]:
    identity = identity_for(identities, event)
    assert identity.natural_key is not None, "configuration is keyed by kind and key"
    kind, key = identity.natural_key.split(NATURAL_KEY_SEPARATOR, 1)
    if kind not in PARTY_KINDS:
        return []
    settings: dict[str, Any] = event.settings
    return [
        RowChange(
            INVOICE_PARTY_CONFIGURED,
            {
                "tenant_id": identity.tenant_id, "party_kind": kind, "party_id": key,
                "effective_at": instant_text(event.effective_at),
                "event_id": str(event.source_event_id),
                # Versions written before v3 lack the fields: None, as a v2 message reads.
                **{name: optional_text(settings.get(name)) for name in PARTY_FIELDS},
            },
        )
    ]


def party_as_of(rows: Sequence[Sequence[Any]], moment: datetime) -> dict[str, str | None] | None:
    """The version in force at `moment` among `rows` (effective_at, event_id, *PARTY_FIELDS)
    of one party: the last effective at or before it, ties by event id, as the ledger orders
    them (ledger/domain/configuration.py); None when none was in force yet."""
    current: dict[str, str | None] | None = None
    for row in sorted(rows, key=lambda r: (datetime.fromisoformat(r[0]), r[1])):
        if datetime.fromisoformat(row[0]) > moment:
            break
        current = dict(zip(PARTY_FIELDS, row[2:], strict=True))
    return current


HANDLERS: dict[type, Callable[[Any, Identities], list[RowChange]]] = {
    event_class(EffectiveDated, "Changed"): configuration_changed,
}
