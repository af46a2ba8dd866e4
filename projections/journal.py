"""Journal read model: every balanced entry and its postings, from whichever event booked it.

Any event that carries `journal_entries` (a list of `JournalEntry.to_dict()`) books them:
today a session's `Settled`, a wallet's `Credited`/`Debited`, a charge's `Succeeded` and a
hold's `Captured`; an aggregate added later is booked without a change here. Entries are
keyed by (tenant, entry id), since nothing crosses tenants. Every balance anywhere is a sum
of these postings.
"""

from __future__ import annotations

from typing import Any

from ledger.domain.errors import LedgerError
from ledger.domain.journal import JournalEntry
from projections.changes import RowChange
from projections.identities import Identities, identity_for
from projections.sql import JOURNAL_ENTRY, JOURNAL_POSTING
from projections.values import ProjectionError, amount_minor, amount_text


def books_money(event: object) -> bool:
    return bool(getattr(event, "journal_entries", None))


def entries_booked(event: Any, identities: Identities) -> list[RowChange]:
    tenant_id = getattr(event, "tenant_id", None)
    if not isinstance(tenant_id, str):
        tenant_id = identity_for(identities, event).tenant_id
    changes: list[RowChange] = []
    for data in event.journal_entries:
        try:
            # Re-validates the entry: it balances and holds no fraction of a minor unit.
            entry = JournalEntry.from_dict(data)
        except (KeyError, ValueError, LedgerError) as exc:
            raise ProjectionError(f"unreadable journal entry {data!r}: {exc}") from exc
        changes.append(
            RowChange(
                JOURNAL_ENTRY,
                {
                    "tenant_id": tenant_id,
                    "entry_id": entry.entry_id,
                    "currency": entry.currency,
                    "description": entry.description,
                    "booked_by": type(event).__qualname__,
                },
            )
        )
        for seq, posting in enumerate(entry.postings):
            changes.append(
                RowChange(
                    JOURNAL_POSTING,
                    {
                        "tenant_id": tenant_id,
                        "entry_id": entry.entry_id,
                        "seq": seq,
                        "account": posting.account,
                        "currency": entry.currency,
                        "amount": amount_text(posting.amount, entry.currency),
                        "amount_minor": amount_minor(posting.amount, entry.currency),
                    },
                )
            )
    return changes

