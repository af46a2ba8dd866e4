"""An event of the ledger -> the row changes it makes to the read models (pure).

Each read model declares the events it projects; the journal books any event that carries
journal entries. Events no read model needs (meter readings, processed-message markers,
most configuration, schedules) make no change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from projections import (
    corporate,
    inbox,
    invoice_parties,
    invoices,
    outbox,
    refunds,
    sessions,
    tariffs,
    wallets,
)
from projections.changes import RowChange
from projections.identities import Identities
from projections.journal import books_money, entries_booked

Handler = Callable[[Any, Identities], list[RowChange]]

HANDLERS: dict[type, Handler] = {}
for _module in (sessions, invoices, wallets, inbox, outbox, corporate, tariffs, refunds,
                invoice_parties):
    _overlap = HANDLERS.keys() & _module.HANDLERS.keys()
    assert not _overlap, f"two read models claim {_overlap}"
    HANDLERS.update(_module.HANDLERS)


def changes_for(event: Any, identities: Identities) -> list[RowChange]:
    """The row changes `event` makes, in the order they must be applied."""
    handler = HANDLERS.get(type(event))
    changes = handler(event, identities) if handler is not None else []
    if books_money(event):
        changes.extend(entries_booked(event, identities))
    return changes
