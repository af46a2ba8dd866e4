"""Corporate accounts read model: one row per partner and billing period, its cap and usage.

Usage is what the partner is billed (gross), as the pool counts it against its cap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.corporate_pool import CorporatePool
from projections.changes import RowChange, event_class
from projections.identities import NATURAL_KEY_SEPARATOR, Identities, identity_for
from projections.sql import CORPORATE_ACCOUNT_OPENED, CORPORATE_ACCOUNT_USED
from projections.values import amount_text, instant_text


def pool_opened(event: Any, identities: Identities) -> list[RowChange]:
    return [
        RowChange(
            CORPORATE_ACCOUNT_OPENED,
            {
                "tenant_id": event.tenant_id, "partner_id": event.partner_id,
                "period_start": instant_text(event.period_start),
                "period_end": instant_text(event.period_end), "currency": event.currency,
                "pool_cap": amount_text(event.pool_limit, event.currency),
                "pool_used": amount_text(0, event.currency),
            },
        )
    ]


def session_covered(event: Any, identities: Identities) -> list[RowChange]:
    identity = identity_for(identities, event)
    assert identity.natural_key is not None
    partner_id, period_start = identity.natural_key.split(NATURAL_KEY_SEPARATOR, 1)
    return [
        RowChange(
            CORPORATE_ACCOUNT_USED,
            {"tenant_id": identity.tenant_id, "partner_id": partner_id,
             "period_start": period_start, "pool_used": str(event.pool_used)},
        )
    ]


HANDLERS: dict[type, Callable[[Any, Identities], list[RowChange]]] = {
    event_class(CorporatePool, "Opened"): pool_opened,
    event_class(CorporatePool, "SessionCovered"): session_covered,
}
