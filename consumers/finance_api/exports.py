"""CSV exports (one tenant, one period) and document renderings, for the API and the pages.

The journal CSV has one posting a row, with the columns an accountant loads: date, entry id,
account, debit, credit, VAT rate, document number (and currency, description). Within each
entry the debits equal the credits, since every entry of the ledger balances.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

JOURNAL_COLUMNS = ("date", "entry_id", "account", "debit", "credit", "vat_rate",
                   "document_number", "currency", "description")
INVOICE_COLUMNS = ("number", "kind", "issued_at", "bill_to", "reference", "currency",
                   "total_excl_vat", "total_vat", "total_incl_vat")


def _csv(columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore",
                            lineterminator="\r\n")  # RFC 4180
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return out.getvalue()


def journal_csv(entries: Iterable[dict[str, Any]]) -> str:
    return _csv(JOURNAL_COLUMNS, (
        {**posting, "date": entry["date"], "entry_id": entry["entry_id"],
         "document_number": entry["document_number"], "currency": entry["currency"],
         "description": entry["description"]}
        for entry in entries for posting in entry["postings"]
    ))


def invoices_csv(documents: Iterable[dict[str, Any]]) -> str:
    return _csv(INVOICE_COLUMNS, documents)


def document_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


def safe_filename(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
