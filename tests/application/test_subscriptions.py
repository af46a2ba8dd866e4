"""Subscriptions through the ledger on the in-memory store (BILLING_RULES.md,
"Subscriptions").

Tariff: 0.40 EUR/kWh excl. VAT, 19 % VAT: 10 kWh = 4.76, 15 kWh = 6.00 + 1.14 = 7.14.
The tenant keeps its books in Europe/Berlin.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger.domain.subscription import Subscription
from ledger.messages import PlanPublished, SubscriptionChanged
from tests.builders import (
    ENERGY_TARIFF,
    T0,
    LedgerDriver,
    driver,
    envelope,
    issued_documents,
    location,
    session_events,
    settlement_of,
    tariff,
    tenant,
    tick,
)

PUBLISHED_AT = T0 - timedelta(days=30)


def plan(plan_id: str, payment: str = "prepaid", **terms: Any) -> PlanPublished:
    terms.setdefault("fee_net", Decimal("10.00"))
    terms.setdefault("fee_vat_rate_percent", Decimal("19"))
    return PlanPublished(**envelope("t1", PUBLISHED_AT), effective_at=PUBLISHED_AT,
                         plan_id=plan_id, payment=payment, **terms)


def change(driver_id: str, plan_id: str, action: str, at: datetime) -> SubscriptionChanged:
    return SubscriptionChanged(**envelope("t1", at), effective_at=at, driver_id=driver_id,
                               plan_id=plan_id, action=action)


def network(*config: Any) -> LedgerDriver:
    d = LedgerDriver()
    d.apply(tenant(time_zone="Europe/Berlin"), tariff(), location(),
            location("OTHER"), driver("post", "post_paid"), driver("w", "wallet"), *config)
    return d


def shares(d: LedgerDriver, tx: str) -> list[tuple[str, str, str]]:
    return [(s["payer"], s["id"], s["amount_incl_vat"])
            for s in settlement_of(d, tx)["charged_to"]]


def model(d: LedgerDriver, tx: str) -> str:
    return str(settlement_of(d, tx)["billing_model"])


def documents(d: LedgerDriver, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in issued_documents(d) if doc["kind"] == kind]


def balanced(d: LedgerDriver) -> None:
    entries = d.journal()
    assert all(sum(p.amount for p in e.postings) == 0 for e in entries)
    assert len({e.entry_id for e in entries}) == len(entries)


def test_prepaid_fee_is_invoiced_and_charged_at_subscribe_and_covers_the_allowance() -> None:
    subscribed = T0 - timedelta(days=1)
    d = network(plan("P20", allowance_kwh=Decimal("20")))
    d.new_commands()
    d.apply(change("post", "P20", "subscribe", subscribed))
    [fee] = d.new_commands()
    assert (fee["action"], fee["amount"], fee["reference"]) == (
        "charge", "11.90", "subscription_fee:post-1:0")
    [invoice] = documents(d, "subscription_invoice")
    assert (invoice["number"], invoice["bill_to"], invoice["total_incl_vat"]) == (
        "S-000001", "post", Decimal("11.90"))
    d.answer(fee, "charge_succeeded")

    d.apply_each(session_events("tx1", "post", "10"))
    assert model(d, "tx1") == "subscription_prepaid"
    assert shares(d, "tx1") == [("subscription", "post-1", "4.76")]
    assert documents(d, "session_receipt") == [], "paid in full by the plan: no receipt"
    # 10 kWh of the allowance left: 10 of 15 kWh covered, pro rata by energy.
    d.apply_each(session_events("tx2", "post", "15", start=T0 + timedelta(hours=2)))
    assert shares(d, "tx2") == [("subscription", "post-1", "4.76"), ("driver", "post", "2.38")]
    [charge] = d.new_commands()
    assert (charge["action"], charge["amount"]) == ("charge", "2.38")
    assert d.balance("subscription_allowance") == Decimal("8.00"), "net of both covered shares"
    assert d.balance("revenue") == Decimal("-20.00"), "fee 10.00 + 10.00 of charging"
    sub = d.get(Subscription, Subscription.create_id("t1", "post"))
    assert sub.usage[0]["kwh"] == Decimal("20")
    balanced(d)


def test_a_failed_prepaid_fee_suspends_the_plan_until_a_retry_succeeds() -> None:
    d = network(tenant(time_zone="Europe/Berlin", retry_schedule_hours=[1]),
                plan("P20", allowance_kwh=Decimal("20")))
    d.new_commands()
    d.apply(change("post", "P20", "subscribe", T0 - timedelta(days=1)))
    [fee] = d.new_commands()
    d.answer(fee, "charge_failed", at=T0 - timedelta(days=1))
    d.apply_each(session_events("tx1", "post", "10"))
    assert model(d, "tx1") == "post_paid", "suspended: the driver's own model pays"
    d.new_commands()
    d.apply(tick(T0 + timedelta(hours=3)))
    [retry] = [c for c in d.new_commands() if c["reference"].startswith("subscription_fee")]
    d.answer(retry, "charge_succeeded", at=T0 + timedelta(hours=3))
    d.apply_each(session_events("tx2", "post", "10", start=T0 + timedelta(hours=4)))
    assert model(d, "tx2") == "subscription_prepaid"


def test_postpaid_calendar_plan_prorates_its_first_month_and_bills_fee_and_usage() -> None:
    # Subscribed on March 16 (Berlin): 16 of March's 31 days, 6.00 * 16/31 = 3.10 net.
    subscribed = datetime.fromisoformat("2026-03-16T09:00:00+01:00")
    d = network(plan("FLEX", "postpaid", anchor="calendar", fee_net=Decimal("6.00"),
                     allowance_sessions=2, overage_discount_percent=Decimal("20")))
    d.apply(change("post", "FLEX", "subscribe", subscribed))
    assert d.new_commands() == [] and documents(d, "subscription_invoice") == []
    for n in range(3):
        d.apply_each(session_events(f"tx{n}", "post", "10",
                                    start=subscribed + timedelta(hours=2 + 2 * n)))
    assert model(d, "tx0") == "subscription_postpaid"
    assert shares(d, "tx1") == [("subscription", "post-1", "4.76")]
    # The third session is beyond the allowance: 20 % off the net, 3.20 + 0.61 VAT = 3.81.
    assert shares(d, "tx2") == [("discount", "post-1", "0.95"), ("driver", "post", "3.81")]
    assert d.new_commands() == [], "a post-paid plan charges at the cycle's end"
    assert documents(d, "session_receipt") == []

    d.apply(tick(datetime.fromisoformat("2026-04-01T00:00:00+02:00")))
    [invoice] = documents(d, "subscription_invoice")
    assert [(line["net"], line["vat"]) for line in invoice["lines"]] == [
        ("3.10", "0.59"), ("3.20", "0.61")]
    assert invoice["total_incl_vat"] == Decimal("7.50")
    [charge] = d.new_commands()
    assert (charge["amount"], charge["reference"]) == ("7.50", f"subscription:{invoice['number']}")
    d.answer(charge, "charge_succeeded")
    assert d.balance("driver_receivable:post") == 0
    balanced(d)


def test_anniversary_on_the_31st_renews_on_the_last_day_of_shorter_months() -> None:
    subscribed = datetime.fromisoformat("2026-01-31T10:00:00+01:00")
    d = network(plan("P", allowance_kwh=Decimal("100")))
    d.apply(change("w", "P", "subscribe", subscribed))
    d.apply(tick(datetime.fromisoformat("2026-02-28T00:00:00+01:00")))
    d.apply(tick(datetime.fromisoformat("2026-03-31T00:00:00+02:00")))
    starts = [doc["issued_at"] for doc in documents(d, "subscription_invoice")]
    assert starts == [subscribed, datetime.fromisoformat("2026-02-28T00:00:00+01:00"),
                      datetime.fromisoformat("2026-03-31T00:00:00+02:00")]


def test_cancel_takes_effect_at_the_cycle_end_and_a_plan_change_at_the_next_cycle() -> None:
    subscribed = datetime.fromisoformat("2026-03-01T00:00:00+01:00")
    d = network(plan("SMALL", allowance_kwh=Decimal("5")),
                plan("BIG", allowance_kwh=Decimal("50"), fee_net=Decimal("20.00")))
    d.apply(change("post", "SMALL", "subscribe", subscribed))
    d.apply(change("post", "BIG", "change_plan", T0))
    d.apply_each(session_events("tx1", "post", "10"))
    assert shares(d, "tx1")[0] == ("subscription", "post-1", "2.38"), "SMALL still: 5 kWh"
    april = datetime.fromisoformat("2026-04-01T00:00:00+02:00")
    d.apply(tick(april))
    d.apply(change("post", "BIG", "cancel", april + timedelta(days=3)))
    d.apply_each(session_events("tx2", "post", "10", start=april + timedelta(days=4)))
    assert shares(d, "tx2") == [("subscription", "post-1", "4.76")], "BIG from April"
    d.apply(tick(datetime.fromisoformat("2026-05-01T00:00:00+02:00")))
    d.apply_each(session_events("tx3", "post", "10",
                                start=datetime.fromisoformat("2026-05-02T10:00:00+02:00")))
    assert model(d, "tx3") == "post_paid", "cancelled at the end of April's cycle"
    fees = [doc["total_incl_vat"] for doc in documents(d, "subscription_invoice")]
    assert fees == [Decimal("11.90"), Decimal("23.80")], "no fee after the cancellation"


def test_a_plan_restricted_to_sites_leaves_other_sites_to_the_drivers_model() -> None:
    d = network(plan("CITY", site_location_ids=["L1"]))
    d.apply(change("post", "CITY", "subscribe", T0 - timedelta(days=1)))
    d.apply_each(session_events("tx1", "post", "10", location_id="OTHER"))
    assert model(d, "tx1") == "post_paid"
    d.apply_each(session_events("tx2", "post", "10", start=T0 + timedelta(hours=2)))
    assert shares(d, "tx2") == [("subscription", "post-1", "4.76")], "unlimited at its site"


def test_a_subscription_to_an_unknown_plan_is_refused_with_the_reason() -> None:
    d = network()
    d.apply(change("post", "NOPE", "subscribe", T0 - timedelta(days=1)))
    d.give_up_waiting()
    [refusal] = d.refusals()
    assert "unknown plan 'NOPE'" in refusal.reason
    d.apply(change("post", "NOPE", "cancel", T0))
    assert "holds no plan to cancel" in d.refusals()[-1].reason


def test_a_plan_with_its_own_tariff_prices_what_lies_beyond_the_allowance_with_it() -> None:
    # The plan's tariff: 0.20 EUR/kWh + 19 % = 0.238 per kWh. 5 kWh of allowance, 10 kWh
    # charged: half covered by the plan, the other 5 kWh paid at the plan's price, 1.19.
    cheap = dict(ENERGY_TARIFF, id="plan-cheap")
    cheap["elements"] = [{"price_components": [
        {"type": "ENERGY", "price": 0.20, "vat": 19.0, "step_size": 1}]}]
    d = network(tariff("plan-cheap", cheap),
                plan("OWN", allowance_kwh=Decimal("5"), overage_tariff_id="plan-cheap"))
    d.apply(change("post", "OWN", "subscribe", T0 - timedelta(days=1)))
    d.apply_each(session_events("tx1", "post", "10"))
    assert settlement_of(d, "tx1")["total_incl_vat"] == Decimal("2.38")
    assert shares(d, "tx1") == [("subscription", "post-1", "1.19"), ("driver", "post", "1.19")]


def test_a_plan_naming_an_unpublished_tariff_is_refused() -> None:
    d = network(plan("GHOST", overage_tariff_id="nope"))
    d.give_up_waiting()
    [dead] = d.dead_letters()
    assert "its own tariff 'nope' is not published" in dead.reason
