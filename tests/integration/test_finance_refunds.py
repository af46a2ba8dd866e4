"""Refunds on the finance desk: a simulated day, then a refund of one wallet session and a
partial one of another, through `ledger ingest`; a real `ledger serve` lists the credit
notes (filter `kind=credit_note`), shows one with its lines and the document it corrects,
exports it in the invoices CSV, and the period's journal CSV still balances per entry."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from consumers.event_file import write_event_file
from ledger.messages import RefundRequested
from tests.finance_desk import (
    HTTP_TIMEOUT_S,
    TENANTS,
    ingest,
    issue_keys,
    run_cli,
    serving,
    simulated_day,
)

pytestmark = pytest.mark.integration
TENANT = TENANTS[0]


def _get(base_url: str, key: str, path: str, **params: Any) -> httpx.Response:
    response = httpx.get(f"{base_url}{path}", params=params, timeout=HTTP_TIMEOUT_S,
                         headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    return response


def test_credit_notes_are_listed_shown_and_exported(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'evledger.db'}"
    ingest(simulated_day(tmp_path), store_url)
    report = json.loads(run_cli("report", "--json", "--store", store_url))
    wallet_sessions = [s for s in report["sessions"] if s["tenant_id"] == TENANT
                       and [p["payer"] for p in s["charged_to"]] == ["wallet"]
                       and Decimal(s["total_incl_vat"]) > 1]
    first, second = wallet_sessions[:2]
    asked_at = max(s["ended_at"] for s in report["sessions"])
    refunds = [
        RefundRequested(event_id="refund-1", tenant_id=TENANT, occurred_at=asked_at,
                        producer="finance-desk", session_id=first["session_id"],
                        currency=first["currency"], reason="charger fault"),
        RefundRequested(event_id="refund-2", tenant_id=TENANT, occurred_at=asked_at,
                        producer="finance-desk", session_id=second["session_id"],
                        currency=second["currency"], amount=Decimal("1.00"),
                        reason="goodwill"),
    ]
    events = tmp_path / "refunds.jsonl"
    write_event_file(events, refunds)
    ingest(events, store_url)

    keys = issue_keys(store_url)
    with serving(store_url, tmp_path / "serve.log") as base_url:
        key = keys[TENANT]
        notes = _get(base_url, key, "/api/v1/documents", kind="credit_note").json()["items"]
        assert [(n["kind"], n["reference"], n["bill_to"], n["total_incl_vat"])
                for n in notes] == [
            ("credit_note", first["receipt_number"], first["driver_id"],
             first["total_incl_vat"]),
            ("credit_note", second["receipt_number"], second["driver_id"], "1.00")]
        one = _get(base_url, key, f"/api/v1/documents/{notes[0]['number']}").json()
        assert "charger fault" in one["lines"][0]["description"]
        # The other tenant has no credit note, and cannot see these.
        other = _get(base_url, keys[TENANTS[1]], "/api/v1/documents",
                     kind="credit_note").json()
        assert other["items"] == []
        day = asked_at[:10]
        after = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        invoices = list(csv.DictReader(io.StringIO(_get(
            base_url, key, "/api/v1/exports/invoices.csv", **{"from": day, "to": after}
        ).text)))
        assert {n["number"] for n in notes} <= {row["number"] for row in invoices}
        journal = list(csv.DictReader(io.StringIO(_get(
            base_url, key, "/api/v1/exports/journal.csv", **{"from": day, "to": after}
        ).text)))
        refund_rows = [row for row in journal if row["entry_id"].startswith("refund:")]
        assert {row["document_number"] for row in refund_rows} == {n["number"] for n in notes}
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for row in journal:
            sums[row["entry_id"]] += Decimal(row["debit"] or 0) - Decimal(row["credit"] or 0)
        assert set(sums.values()) == {Decimal(0)}
