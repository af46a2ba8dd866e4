"""The finance API as a client sees it: a real `ledger serve` (uvicorn) on the embedded
SQLite store and on PostgreSQL (reading through the reader role under row-level security),
over a simulated two-tenant day."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.einvoice_checks import assert_totals_add_up, read_einvoice
from tests.finance_desk import (
    HTTP_TIMEOUT_S,
    TENANTS,
    ensure_reader_role,
    ingest,
    issue_keys,
    new_database,
    run_cli,
    serving,
    simulated_day,
)

pytestmark = pytest.mark.integration
TENANT, OTHER = TENANTS


@dataclass(frozen=True)
class Desk:
    base_url: str
    store_url: str
    keys: dict[str, str]

    def get(self, path: str, tenant: str = TENANT, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.base_url}{path}", params=params, timeout=HTTP_TIMEOUT_S,
                         headers={"X-API-Key": self.keys[tenant]})

    def ok(self, path: str, tenant: str = TENANT, **params: Any) -> Any:
        response = self.get(path, tenant, **params)
        assert response.status_code == 200, response.text
        return response.json()

    def every(self, path: str, tenant: str = TENANT, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged list, following next_cursor."""
        items: list[dict[str, Any]] = []
        cursor = None
        for _ in range(1000):  # a bound: far more pages than the day has
            page = self.ok(path, tenant, **params, **({"cursor": cursor} if cursor else {}))
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items
        raise AssertionError("pagination does not end")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def desk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Desk]:
    directory = tmp_path_factory.mktemp("finance")
    events = simulated_day(directory)
    with _store(request, directory) as store_url:
        ingest(events, store_url)
        keys = issue_keys(store_url)
        with serving(store_url, directory / "serve.log") as base_url:
            yield Desk(base_url, store_url, keys)


def _store(request: pytest.FixtureRequest, directory: Path) -> Any:
    if request.param == "sqlite":
        import contextlib
        return contextlib.nullcontext(f"sqlite:///{directory / 'evledger.db'}")
    database_url: str = request.getfixturevalue("database_url")
    ensure_reader_role(database_url)
    return new_database(database_url)


# ---------------------------------------------------------------------------- keys
def test_without_a_key_or_with_a_wrong_one_the_api_answers_401(desk: Desk) -> None:
    url = f"{desk.base_url}/api/v1/documents"
    for headers in ({}, {"X-API-Key": "evk_0000000000000000_nope"}, {"X-API-Key": "x" * 500},
                    {"X-API-Key": desk.keys[TENANT] + "x"}):
        response = httpx.get(url, headers=headers, timeout=HTTP_TIMEOUT_S)
        assert response.status_code == 401
        assert "API key" in response.json()["message"]
    bearer = httpx.get(url, headers={"Authorization": f"Bearer {desk.keys[TENANT]}"},
                       timeout=HTTP_TIMEOUT_S)
    assert bearer.status_code == 200


def test_a_revoked_key_is_refused_and_keys_are_stored_hashed(desk: Desk) -> None:
    key = run_cli("api-keys", "create", "--tenant", TENANT, "--label", "temp",
                  "--store", desk.store_url).strip()
    assert httpx.get(f"{desk.base_url}/api/v1/balances", headers={"X-API-Key": key},
                     timeout=HTTP_TIMEOUT_S).status_code == 200
    listed = json.loads(run_cli("api-keys", "list", "--store", desk.store_url))
    key_id = key.split("_")[1]
    assert [k["label"] for k in listed if k["key_id"] == key_id] == ["temp"]
    assert key.split("_", 2)[2] not in json.dumps(listed)
    run_cli("api-keys", "revoke", "--key-id", key_id, "--store", desk.store_url)
    assert httpx.get(f"{desk.base_url}/api/v1/balances", headers={"X-API-Key": key},
                     timeout=HTTP_TIMEOUT_S).status_code == 401


# ---------------------------------------------------------------------------- documents
def test_documents_page_with_an_opaque_cursor_and_every_page_is_the_whole_list(
    desk: Desk,
) -> None:
    whole = desk.ok("/api/v1/documents", limit=500)
    assert whole["next_cursor"] is None and len(whole["items"]) > 10
    paged = desk.every("/api/v1/documents", limit=3)
    assert paged == whole["items"]
    numbers = [d["number"] for d in paged]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_documents_filter_by_kind_customer_and_period(desk: Desk) -> None:
    every = desk.every("/api/v1/documents")
    kind = every[0]["kind"]
    assert all(d["kind"] == kind for d in desk.every("/api/v1/documents", kind=kind))
    customer = every[0]["bill_to"]
    by_customer = desk.every("/api/v1/documents", customer=customer)
    assert by_customer and all(d["bill_to"] == customer for d in by_customer)
    day = every[0]["issued_at"][:10]
    next_day = str(__import__("datetime").date.fromisoformat(day)
                   + __import__("datetime").timedelta(days=1))
    in_day = desk.every("/api/v1/documents", **{"from": day, "to": next_day})
    assert in_day and all(d["issued_at"].startswith(day) for d in in_day)
    assert len(in_day) == sum(1 for d in every if (d["issued_at"] or "").startswith(day))


def test_bad_parameters_get_a_4xx_with_a_message(desk: Desk) -> None:
    for params, status in (({"from": "yesterday"}, 400), ({"from": "2026-03-10",
                                                           "to": "2026-03-10"}, 400),
                           ({"cursor": "not-a-cursor"}, 400), ({"limit": 0}, 422),
                           ({"limit": 100000}, 422)):
        response = desk.get("/api/v1/documents", **params)
        assert response.status_code == status, (params, response.text)
        assert response.json()["message"]


def test_one_document_with_its_lines_and_its_downloads(desk: Desk) -> None:
    number = desk.every("/api/v1/documents")[0]["number"]
    document = desk.ok(f"/api/v1/documents/{number}")
    assert document["lines"]
    as_json = desk.get(f"/api/v1/documents/{number}/download", format="json")
    assert as_json.status_code == 200
    assert "attachment" in as_json.headers["content-disposition"]
    assert json.loads(as_json.text) == document
    as_html = desk.get(f"/api/v1/documents/{number}/download", format="html")
    assert as_html.status_code == 200 and number in as_html.text
    assert as_html.headers["content-type"].startswith("text/html")


def test_another_tenants_ids_are_not_found(desk: Desk) -> None:
    mine = {d["number"] for d in desk.every("/api/v1/documents")}
    theirs_only = [d["number"] for d in desk.every("/api/v1/documents", tenant=OTHER)
                   if d["number"] not in mine]
    their_session = desk.every("/api/v1/sessions", tenant=OTHER)[0]["session_id"]
    assert their_session not in {s["session_id"] for s in desk.every("/api/v1/sessions")}
    assert desk.get(f"/api/v1/sessions/{their_session}").status_code == 404
    for number in theirs_only:
        assert desk.get(f"/api/v1/documents/{number}").status_code == 404
        assert desk.get(f"/api/v1/documents/{number}/download").status_code == 404
        assert desk.get(f"/api/v1/documents/{number}/download",
                        format="cii").status_code == 404
    # Same numbers in both series are each tenant's own document.
    shared = sorted(mine & {d["number"] for d in desk.every("/api/v1/documents", tenant=OTHER)})
    assert shared
    assert (desk.ok(f"/api/v1/documents/{shared[0]}")
            != desk.ok(f"/api/v1/documents/{shared[0]}", tenant=OTHER))


def test_partner_invoices_download_as_valid_einvoices_of_the_keys_tenant(desk: Desk) -> None:
    numbers: dict[str, set[str]] = {}
    for tenant in TENANTS:
        partner_invoices = [d for d in desk.every("/api/v1/documents", tenant=tenant)
                            if d["kind"] in {"corporate_settlement", "voucher_batch"}]
        assert partner_invoices, tenant
        numbers[tenant] = {d["number"] for d in partner_invoices}
        for document in partner_invoices:
            response = desk.get(f"/api/v1/documents/{document['number']}/download", tenant,
                                format="cii")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("application/xml")
            assert f"{document['number']}.xml" in response.headers["content-disposition"]

            figures = read_einvoice(response.content)

            # The seller is the key's tenant even where both tenants have this number.
            assert (figures.seller_id, figures.buyer_id) == (tenant, document["bill_to"])
            assert figures.grand_total == Decimal(document["total_incl_vat"])
            assert_totals_add_up(figures)
    assert numbers[TENANT] & numbers[OTHER], "the same number in both tenants' series"


def test_an_einvoice_of_a_receipt_is_a_400_that_says_why(desk: Desk) -> None:
    receipt = next(d for d in desk.every("/api/v1/documents", kind="session_receipt"))

    response = desk.get(f"/api/v1/documents/{receipt['number']}/download", format="cii")

    assert response.status_code == 400
    assert "e-invoices are given for partner settlement" in response.json()["message"]


# ---------------------------------------------------------------------------- sessions
def test_sessions_carry_their_payer_split_and_balanced_journal_entries(desk: Desk) -> None:
    sessions = desk.every("/api/v1/sessions")
    settled = [s for s in sessions if s["status"] == "settled"]
    assert settled
    for s in settled:
        shares = sum((Decimal(p["amount_incl_vat"]) for p in s["charged_to"]), Decimal(0))
        assert shares == Decimal(s["total_incl_vat"]), s["session_id"]
    one = desk.ok(f"/api/v1/sessions/{settled[0]['session_id']}")
    assert one["charged_to"] == settled[0]["charged_to"]
    assert one["journal_entries"]
    for entry in one["journal_entries"]:
        assert sum(p["amount_minor"] for p in entry["postings"]) == 0
    model = settled[0]["billing_model"]
    assert all(s["billing_model"] == model
               for s in desk.every("/api/v1/sessions", billing_model=model))


# ---------------------------------------------------------------------------- balances
def test_balances_and_the_trial_balance_add_up(desk: Desk) -> None:
    balances = desk.ok("/api/v1/balances")
    assert set(balances) == {"wallets", "receivables", "partner_pools"}
    assert balances["wallets"]
    trial = desk.ok("/api/v1/journal/trial-balance")["accounts"]
    assert sum(Decimal(a["balance"]) for a in trial) == 0
    by_account = {a["account"]: a for a in trial}
    for w in balances["wallets"]:
        account = by_account.get(f"wallet:{w['driver_id']}")
        assert Decimal(w["balance"]) == (-Decimal(account["balance"]) if account else 0)


def test_balances_and_documents_as_of_a_business_time_are_the_reports(desk: Desk) -> None:
    """The API's as_of answers with the figures of `ledger report --as-of` for the key's
    tenant (the hand-computed figures are tests/application/test_business_as_of.py)."""
    issued = sorted(d["issued_at"] for d in desk.every("/api/v1/documents"))
    middle = issued[len(issued) // 2]  # an instant in the middle of the day
    balances = desk.ok("/api/v1/balances", as_of=middle)
    assert balances["as_of"]["until"] == middle and balances["as_of"]["basis"] == "business_time"
    report = json.loads(run_cli("report", "--store", desk.store_url, "--json",
                                "--as-of", middle))
    assert balances["wallets"] == [
        {"driver_id": w["driver_id"], "currency": w["currency"], "balance": w["balance"]}
        for w in report["wallets"] if w["tenant_id"] == TENANT]
    documents = desk.every("/api/v1/documents", as_of=middle)
    assert [d["number"] for d in documents] == [
        i["number"] for i in report["invoices"] if i["tenant_id"] == TENANT]
    assert 0 < len(documents) < len(issued), "a cut in the middle of the day"
    assert all(d["issued_at"] <= middle for d in documents)
    # After everything: the live figures; before anything: nothing.
    later = desk.ok("/api/v1/balances", as_of="2999-12-31")
    assert later.pop("as_of")["time_zone"] and later == desk.ok("/api/v1/balances")
    assert desk.ok("/api/v1/balances", as_of="2000-01-01")["wallets"] == []
    for bad in ("yesterday", "2026-02-30", "0001-01-01T00:00Z"):
        response = desk.get("/api/v1/balances", as_of=bad)
        assert response.status_code == 400 and "as_of" in response.json()["message"]
    assert desk.get("/api/v1/balances", as_of="x" * 100).status_code == 422


# ---------------------------------------------------------------------------- exports
def test_the_journal_csv_of_a_period_balances_per_entry(desk: Desk) -> None:
    entries = desk.every("/api/v1/journal/entries")
    days = sorted({e["date"] for e in entries if e["date"]})
    response = desk.get("/api/v1/exports/journal.csv", **{"from": days[0], "to": "2099-01-01"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == ["date", "entry_id", "account", "debit", "credit", "vat_rate",
                             "document_number", "currency", "description"]
    per_entry: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        per_entry[row["entry_id"]] += Decimal(row["debit"] or 0) - Decimal(row["credit"] or 0)
        if row["account"].startswith("vat_payable:") and row["account"] != "vat_payable:none":
            assert row["vat_rate"] == row["account"].split(":")[1]
    assert per_entry and all(v == 0 for v in per_entry.values())
    dated = {e["entry_id"] for e in entries if e["date"]}
    assert set(per_entry) == dated


def test_the_invoices_csv_is_the_periods_documents(desk: Desk) -> None:
    every = desk.every("/api/v1/documents")
    day = every[0]["issued_at"][:10]
    response = desk.get("/api/v1/exports/invoices.csv", **{"from": day, "to": "2099-01-01"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["number"] for r in rows] == [d["number"] for d in every
                                          if (d["issued_at"] or "")[:10] >= day]
    assert desk.get("/api/v1/exports/invoices.csv").status_code == 422  # a period is required


# ---------------------------------------------------------------------------- operations
def test_dead_letters_and_refusals_are_the_tenants_own(desk: Desk) -> None:
    refusals = desk.every("/api/v1/operations/refusals")
    assert refusals and all(r["reason"] for r in refusals)
    theirs = {r["event_id"] for r in desk.every("/api/v1/operations/refusals", tenant=OTHER)}
    assert not theirs & {r["event_id"] for r in refusals}
    # The day's dead letters name no known tenant (an unknown operator, a malformed line).
    assert desk.every("/api/v1/operations/dead-letters") == []


def test_key_and_serve_commands_say_what_is_wrong_and_exit_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from consumers.cli import main

    store = f"sqlite:///{tmp_path / 'evledger.db'}"
    for argv, message in (
        (["api-keys", "revoke", "--key-id", "nope", "--store", store], "no active key"),
        (["api-keys", "create", "--tenant", " ", "--store", store], "needs a tenant"),
        (["serve", "--port", "70000", "--store", store], "not a TCP port"),
    ):
        assert main(argv) == 2
        assert message in capsys.readouterr().err
