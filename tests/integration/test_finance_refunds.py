"""Refunds on the finance desk: a simulated day (its desk refunds two sessions), then a
partial refund of another wallet session through `ledger ingest`; a real `ledger serve`
lists the credit notes (filter `kind=credit_note`), shows one with its lines and the
document it corrects, exports them in the invoices CSV, and the period's journal CSV still
balances per entry."""

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
    ingest(simulated_day(tmp_path), store_url)  # the day's desk refunds two sessions
    report = json.loads(run_cli("report", "--json", "--store", store_url))
    refunded = {r["session_id"] for r in report["refunds"]}
    wallet_sessions = [s for s in report["sessions"] if s["tenant_id"] == TENANT
                       and [p["payer"] for p in s["charged_to"]] == ["wallet"]
                       and s["session_id"] not in refunded
                       and Decimal(s["total_incl_vat"]) > 1]
    session = wallet_sessions[0]
    asked_at = max(r["refunded_at"] for r in report["refunds"])
    events = tmp_path / "refunds.jsonl"
    write_event_file(events, [RefundRequested(
        event_id="refund-by-test", tenant_id=TENANT, occurred_at=asked_at,
        producer="finance-desk", session_id=session["session_id"],
        currency=session["currency"], amount=Decimal("1.00"), reason="goodwill",
    )])
    ingest(events, store_url)
    report = json.loads(run_cli("report", "--json", "--store", store_url))
    mine = [r for r in report["refunds"] if r["tenant_id"] == TENANT]
    assert len(mine) == 3
    expected = {n: r for r in mine for n in r["credit_notes"]}

    keys = issue_keys(store_url)
    with serving(store_url, tmp_path / "serve.log") as base_url:
        key = keys[TENANT]
        notes = _get(base_url, key, "/api/v1/documents", kind="credit_note").json()["items"]
        assert {n["number"] for n in notes} == set(expected)
        assert all(n["kind"] == "credit_note" for n in notes)
        by_session = {s["session_id"]: s for s in report["sessions"]
                      if s["tenant_id"] == TENANT}
        for note in notes:
            refund = expected[note["number"]]
            assert note["reference"] == by_session[refund["session_id"]]["receipt_number"]
            assert note["total_incl_vat"] == refund["amount"]
        [ours] = [n for n in notes if expected[n["number"]]["refund_id"] == "refund-by-test"]
        assert (ours["bill_to"], ours["total_incl_vat"]) == (session["driver_id"], "1.00")
        one = _get(base_url, key, f"/api/v1/documents/{ours['number']}").json()
        assert "goodwill" in one["lines"][0]["description"]
        # The other tenant's credit notes are its own (numbers are per tenant).
        other = _get(base_url, keys[TENANTS[1]], "/api/v1/documents",
                     kind="credit_note").json()["items"]
        assert {n["bill_to"] for n in other}.isdisjoint({n["bill_to"] for n in notes})
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
