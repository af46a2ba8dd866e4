"""The accountant's exports on the demo day (`ledger demo`: simulate + ingest on SQLite):
the journal CSV of each tenant's period balances to zero per entry."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from consumers.finance_api.exports import JOURNAL_COLUMNS, invoices_csv, journal_csv
from consumers.store import open_store
from projections import finance_queries as fq
from projections.database import open_read_model
from tests.finance_desk import run_cli

pytestmark = pytest.mark.integration


def test_the_journal_csv_of_the_demo_day_balances_per_entry(tmp_path: Path) -> None:
    run_cli("demo", "--out", str(tmp_path))
    ledger = open_store(f"sqlite:///{tmp_path / 'evledger.db'}")
    db = open_read_model(ledger)
    try:
        tenants = sorted({str(t) for (t,) in db.query("SELECT tenant_id FROM rm_invoices")})
        assert tenants
        for tenant in tenants:
            entries = fq.journal(db.query, tenant)
            days = sorted({e["date"] for e in entries if e["date"]})
            period = fq.Period.parse(days[0], "2100-01-01")
            text = journal_csv(fq.journal(db.query, tenant, period))
            rows = list(csv.DictReader(io.StringIO(text)))
            assert tuple(rows[0]) == JOURNAL_COLUMNS
            per_entry: dict[str, Decimal] = defaultdict(Decimal)
            for row in rows:
                assert bool(row["debit"]) != bool(row["credit"]), row
                per_entry[row["entry_id"]] += (Decimal(row["debit"] or 0)
                                               - Decimal(row["credit"] or 0))
            assert all(total == 0 for total in per_entry.values())
            # Every entry the demo books is dated but balance vouchers redeemed into a
            # wallet (no document names them): see docs/finance.md.
            undated = [e for e in entries if not e["date"]]
            assert all(e["entry_id"].endswith(":redeemed") for e in undated)
            assert len(per_entry) == len(entries) - len(undated)
            documents = fq.documents(db.query, tenant, period)
            assert len(list(csv.DictReader(io.StringIO(invoices_csv(documents))))) == len(
                documents)
    finally:
        db.close()
        ledger.close()
