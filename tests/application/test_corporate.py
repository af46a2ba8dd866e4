"""Corporate billing through the ledger on the in-memory store (BILLING_RULES.md, "Corporate
billing").

Tariff: 0.40 EUR/kWh excl. VAT, 19 % VAT. 25 kWh -> 10.00 net, 1.90 VAT, 11.90 gross.
With a 10 % discount the partner is billed 9.00 net + 1.71 VAT = 10.71; the discount row is
the rest of the share, 1.19 (1.00 net, and 0.19 VAT nobody is charged).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from ledger.domain.corporate_pool import CorporatePool
from ledger.domain.wallet import Wallet
from ledger.messages import EnrolmentChanged, PartnerConfigured
from tests.builders import (
    T0,
    LedgerDriver,
    driver,
    envelope,
    issued_documents,
    location,
    session_events,
    tariff,
    tenant,
    tick,
    top_up,
)
from tests.builders import (
    settlement_of as settlement,
)

CONFIGURED_AT = T0 - timedelta(days=30)  # 2026-01-31 08:00 UTC


def partner(partner_id: str = "P1", **terms: Any) -> PartnerConfigured:
    terms.setdefault("billing_period", "monthly")
    terms.setdefault("pool_limit", Decimal("1000.00"))
    return PartnerConfigured(**envelope("t1", CONFIGURED_AT), effective_at=CONFIGURED_AT,
                             partner_id=partner_id, **terms)


def enrol(driver_id: str, partner_id: str = "P1", at: Any = CONFIGURED_AT,
          **terms: Any) -> EnrolmentChanged:
    return EnrolmentChanged(**envelope("t1", at), effective_at=at, partner_id=partner_id,
                            driver_id=driver_id, action="enrol", **terms)


def network(*config: Any) -> LedgerDriver:
    d = LedgerDriver()
    d.apply(
        tenant(time_zone="Europe/Berlin"), tariff(), location("OWN", owner_partner_id="P1"),
        location("L1"), driver("w", "wallet"), driver("post", "post_paid"),
        driver("pre", "pre_authorization"), top_up("w", "50.00"), *config,
    )
    d.new_commands()
    return d



def shares(d: LedgerDriver, tx: str) -> list[tuple[str, str, str]]:
    return [(s["payer"], s["id"], s["amount_incl_vat"]) for s in settlement(d, tx)["charged_to"]]


def balanced(d: LedgerDriver) -> None:
    entries = d.journal()
    assert all(sum(p.amount for p in e.postings) == 0 for e in entries)
    assert len({e.entry_id for e in entries}) == len(entries)


def test_the_issue_example_partner_pays_its_discounted_share_and_the_wallet_nothing() -> None:
    d = network(partner(discount_percent=Decimal("10"), own_sites_only=True), enrol("w"))
    d.apply_each(session_events("tx1", "w", "25", location_id="OWN"))
    s = settlement(d, "tx1")
    assert (s["billing_model"], s["total_incl_vat"]) == ("corporate", Decimal("11.90"))
    assert shares(d, "tx1") == [("partner", "P1", "10.71"), ("discount", "P1", "1.19")]
    assert s["receipt_number"] is None, "paid in full by the partner: no driver receipt"
    assert d.get(Wallet, Wallet.create_id("t1", "w")).balance == Decimal("50.00")
    assert d.balance("partner_receivable:P1") == Decimal("10.71")
    assert d.balance("discounts") == Decimal("1.00")
    assert d.balance("revenue") == Decimal("-10.00")
    assert d.balance("vat_payable:19") == Decimal("-1.71"), "VAT on the discounted net only"
    balanced(d)


def test_own_sites_only_leaves_a_public_site_to_the_drivers_own_model() -> None:
    d = network(partner(own_sites_only=True), enrol("w"))
    d.apply_each(session_events("tx1", "w", "25", location_id="L1"))
    assert settlement(d, "tx1")["billing_model"] == "wallet"
    assert shares(d, "tx1") == [("wallet", "w", "11.90")]


def test_a_session_crossing_the_pool_is_split_and_the_card_pays_the_rest() -> None:
    d = network(partner(pool_limit=Decimal("5.00")), enrol("post"))
    d.apply_each(session_events("tx1", "post", "25", location_id="L1"))
    assert shares(d, "tx1") == [("partner", "P1", "5.00"), ("driver", "post", "6.90")]
    [charge] = d.new_commands()
    assert (charge["action"], charge["amount"]) == ("charge", "6.90")
    [receipt] = [doc for doc in issued_documents(d) if doc["kind"] == "session_receipt"]
    assert (receipt["bill_to"], receipt["total_incl_vat"]) == ("post", Decimal("6.90"))
    pool = d.get(CorporatePool, next(iter(_pool_ids(d))))
    assert pool.used == Decimal("5.00")
    balanced(d)


def test_the_driver_limit_caps_each_driver_and_the_pool_caps_them_all() -> None:
    d = network(partner(pool_limit=Decimal("10.00")), enrol("w", driver_limit=Decimal("4.00")),
                enrol("post"))
    d.apply_each(session_events("tx1", "w", "25", location_id="L1"))
    d.apply_each(session_events("tx2", "post", "25", start=T0 + timedelta(hours=2)))
    d.apply_each(session_events("tx3", "post", "25", start=T0 + timedelta(hours=4)))
    assert shares(d, "tx1") == [("partner", "P1", "4.00"), ("wallet", "w", "7.90")]
    assert shares(d, "tx2") == [("partner", "P1", "6.00"), ("driver", "post", "5.90")]
    # The pool is used up: the next session is the driver's own from the start.
    assert settlement(d, "tx3")["billing_model"] == "post_paid"
    assert shares(d, "tx3") == [("driver", "post", "11.90")]
    balanced(d)


def test_usage_resets_at_the_period_start_in_the_tenants_time_zone() -> None:
    d = network(partner(pool_limit=Decimal("11.90")), enrol("post"))
    d.apply_each(session_events("tx1", "post", "25"))
    # 2026-03-31 22:30 UTC is already April 1st in Berlin (CEST): a new period.
    april = T0.replace(day=31, hour=22, minute=30)
    d.apply_each(session_events("tx2", "post", "25", start=april))
    assert shares(d, "tx1") == [("partner", "P1", "11.90")]
    assert shares(d, "tx2") == [("partner", "P1", "11.90")]
    assert len(_pool_ids(d)) == 2


def test_the_period_end_issues_one_settlement_invoice_with_a_line_per_driver() -> None:
    d = network(partner(discount_percent=Decimal("10")), enrol("w"), enrol("post"))
    d.apply_each(session_events("tx1", "w", "25"))
    d.apply_each(session_events("tx2", "post", "10", start=T0 + timedelta(hours=2)))
    d.apply_each(session_events("tx3", "post", "10", start=T0 + timedelta(hours=4)))
    # March ends at 2026-03-31 22:00 UTC (Berlin); invoiced 48 h later.
    d.apply(tick(T0.replace(day=31, hour=22) + timedelta(hours=47)))
    assert [doc for doc in issued_documents(d) if doc["kind"] == "corporate_settlement"] == []
    d.apply(tick(T0.replace(day=31, hour=22) + timedelta(hours=48)))
    [invoice] = [doc for doc in issued_documents(d) if doc["kind"] == "corporate_settlement"]
    assert (invoice["number"], invoice["bill_to"]) == ("C-000001", "P1")
    lines = {(line["description"], line.get("driver_id")): line for line in invoice["lines"]}
    # Billed per session: 10.71 (9.00 + 1.71) + 4.28 + 4.28 (3.60 + 0.68) = 19.27, VAT 3.07.
    # The invoice's 19 % basis is 18.00 - 1.80 = 16.20 and 16.20 x 19 % = 3.078 -> 3.08;
    # spread by the VAT booked (1.71 : 1.36): 308 x 171/307 = 171.56, 308 x 136/307 = 136.44,
    # floors 171 + 136 and the left cent to the larger remainder: w 1.72, post 1.36.
    post = lines[("Charging by driver post", "post")]
    assert (post["sessions"], post["net"], post["vat"]) == (["tx2", "tx3"], "8.00", "1.36")
    w = lines[("Charging by driver w", "w")]
    assert (w["sessions"], w["net"], w["vat"]) == (["tx1"], "10.00", "1.72")
    assert lines[("Discount", None)]["net"] == "-1.80"
    assert invoice["total_incl_vat"] == Decimal("19.28")  # 16.20 + 3.08
    # The cent of VAT rounding is booked at settlement: the partner owes the invoice total.
    assert d.balance("partner_receivable:P1") == Decimal("19.28")
    assert d.balance("vat_payable:19") == Decimal("-3.08")
    [rounding] = [e for e in d.journal() if e.entry_id.startswith("settlement_vat_rounding:")]
    assert rounding.entry_id == "settlement_vat_rounding:t1:P1:2026-02-28T23:00:00+00:00"
    assert {p.account: p.amount for p in rounding.postings} == {
        "partner_receivable:P1": Decimal("0.01"), "vat_payable:19": Decimal("-0.01")}
    assert d.new_commands() == [], "invoice terms: left as a receivable"
    balanced(d)


def test_a_partner_paying_by_card_is_charged_the_settlement() -> None:
    d = network(partner(payment_terms="card", payment_method_token="tok-p1"), enrol("post"))
    d.apply_each(session_events("tx1", "post", "25"))
    d.apply(tick(T0.replace(day=31, hour=22) + timedelta(hours=48)))
    [charge] = d.new_commands()
    assert (charge["action"], charge["amount"], charge["payment_method_token"]) == (
        "charge", "11.90", "tok-p1")
    d.answer(charge, "charge_succeeded")
    assert d.balance("partner_receivable:P1") == 0


def test_a_partner_paying_by_card_is_charged_the_invoice_total_with_its_vat_rounding() -> None:
    d = network(partner(payment_terms="card", payment_method_token="tok-p1",
                        discount_percent=Decimal("10")), enrol("post"))
    d.apply_each(session_events("tx1", "post", "10"))
    d.apply_each(session_events("tx2", "post", "10", start=T0 + timedelta(hours=2)))
    d.apply(tick(T0.replace(day=31, hour=22) + timedelta(hours=48)))
    # Each session billed 3.60 + 0.68 (3.60 x 19 % = 0.684) = 4.28, so 8.56 in all; the
    # invoice's VAT is 7.20 x 19 % = 1.368 -> 1.37, its total 8.57: what the card is charged.
    [charge] = d.new_commands()
    assert (charge["action"], charge["amount"]) == ("charge", "8.57")
    assert d.balance("partner_receivable:P1") == Decimal("8.57")
    d.answer(charge, "charge_succeeded")
    assert d.balance("partner_receivable:P1") == 0
    balanced(d)


def test_an_enrolment_with_an_unknown_partner_is_refused_with_the_reason() -> None:
    d = network()
    d.apply(enrol("w", partner_id="NOPE"))
    d.give_up_waiting()
    [refusal] = d.refusals()
    assert "unknown partner 'NOPE'" in refusal.reason
    d.apply_each(session_events("tx1", "w", "25"))
    assert settlement(d, "tx1")["billing_model"] == "wallet"


def test_a_pre_authorization_stop_weighs_only_the_drivers_share() -> None:
    # Hold 25.00, stop at 95 % = 23.75. The partner covers up to 20.00 of the running cost,
    # so a session is stopped only once the driver's own share nears the hold.
    d = network(partner(pool_limit=Decimal("20.00")), enrol("pre"))
    events = session_events("tx1", "pre", "80", updates=7)  # 80 kWh = 38.08 over 8 steps
    d.apply(events[0])
    [authorize] = d.new_commands()
    d.answer(authorize, "hold_authorized")
    d.apply_each(events[1:5])  # 40 kWh = 19.04: covered by the partner
    assert d.new_commands() == []
    d.apply_each(events[5:])
    commands = [c for c in d.new_commands() if c.get("_type") == "StopSessionRequested"]
    assert commands == [], "the driver's share (38.08 - 20.00) stays below the threshold"
    assert shares(d, "tx1") == [("partner", "P1", "20.00"), ("driver", "pre", "18.08")]


def _pool_ids(d: LedgerDriver) -> set[Any]:
    return {e.originator_id for e in d._all(CorporatePool.Opened)}
