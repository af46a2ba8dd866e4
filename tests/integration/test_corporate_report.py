"""Corporate billing through `ledger ingest` and `ledger report --json` on both real stores:
the contract's `corporate_accounts`, the partner and discount payer rows, and the partner's
settlement invoice (BILLING_RULES.md "Corporate billing"; CONTRACT.md "Report")."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from consumers.event_file import write_event_file
from tests.application.test_corporate import enrol, partner
from tests.builders import T0, driver, location, session_events, tariff, tenant, tick, top_up
from tests.integration.test_ingest import STORE_KINDS, ingest, report_json, store_for

pytestmark = pytest.mark.integration

MARCH_END = T0.replace(day=31, hour=22)  # 2026-04-01 00:00 in Berlin (CEST)


@pytest.mark.parametrize("store_kind", STORE_KINDS)
def test_a_partner_period_is_reported_and_invoiced_on_both_stores(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = store_for(store_kind, "corporate.db", tmp_path, request, "fresh_database")
    events = tmp_path / "corporate.jsonl"
    write_event_file(events, [
        tenant(time_zone="Europe/Berlin"), tariff(), location("OWN", owner_partner_id="P1"),
        location("L1"), driver("w", "wallet"), driver("post", "post_paid"),
        top_up("w", "50.00"),
        partner(pool_limit=Decimal("15.00"), discount_percent=Decimal("10"),
                own_sites_only=True),
        enrol("w"), enrol("post"),
        *session_events("tx1", "w", "25", location_id="OWN"),
        *session_events("tx2", "post", "25", location_id="OWN", start=T0 + timedelta(hours=2)),
        *session_events("tx3", "post", "25", location_id="L1", start=T0 + timedelta(hours=4)),
        tick(MARCH_END + timedelta(hours=48)),
    ])

    ingest(capsys, events, store)
    report = json.loads(report_json(capsys, store))

    assert report["corporate_accounts"] == [{
        "tenant_id": "t1", "partner_id": "P1", "period_start": "2026-02-28T23:00:00Z",
        "period_end": "2026-03-31T22:00:00Z", "currency": "EUR",
        "pool_cap": "15.00", "pool_used": "14.99",
    }]
    sessions = {s["session_id"]: s for s in report["sessions"]}
    assert sessions["tx1"]["billing_model"] == "corporate"
    assert [(p["payer"], p["amount_incl_vat"]) for p in sessions["tx1"]["charged_to"]] == [
        ("partner", "10.71"), ("discount", "1.19")]
    # 4.29 of the pool left. A share of 4.77 would bill 3.61 + 0.69 = 4.30, too much; 4.76
    # bills 3.60 + 0.68 = 4.28 (a cent of the pool stays unused), the card pays 7.14.
    assert [(p["payer"], p["amount_incl_vat"]) for p in sessions["tx2"]["charged_to"]] == [
        ("partner", "4.28"), ("discount", "0.48"), ("driver", "7.14")]
    assert sessions["tx3"]["billing_model"] == "post_paid", "a public site: own sites only"
    [settlement] = [i for i in report["invoices"] if i["kind"] == "corporate_settlement"]
    assert (settlement["number"], settlement["bill_to"], settlement["total_incl_vat"]) == (
        "C-000001", "P1", "14.99")
    assert report["journal"]["sum_of_postings"] == "0.00"
