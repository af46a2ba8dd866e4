"""Finding issued documents: a receipt by who it was billed to (an ad hoc terminal's
receipt by the terminal reference, a driver's receipts by driver id)."""

from __future__ import annotations

import json
from typing import Any

from projections import sql
from projections.database import ReadModelDatabase


def documents_billed_to(
    db: ReadModelDatabase, tenant_id: str, bill_to: str
) -> list[dict[str, Any]]:
    names = ("number", "kind", "reference", "bill_to", "currency", "total_excl_vat",
             "total_vat", "total_incl_vat", "issued_at")
    found = []
    for row in db.query(sql.SELECT_DOCUMENTS_BILLED_TO.text,
                        {"tenant_id": tenant_id, "bill_to": bill_to}):
        document = dict(zip(names, row[:-1], strict=True))
        document["tenant_id"] = tenant_id
        document["lines"] = json.loads(row[-1])
        found.append(document)
    return sorted(found, key=lambda d: d["number"])


def terminal_receipts(db: ReadModelDatabase, tenant_id: str, reference: str
                      ) -> list[dict[str, Any]]:
    """Receipts of an ad hoc terminal payment: billed to `terminal:<reference>`."""
    return documents_billed_to(db, tenant_id, f"terminal:{reference}")
