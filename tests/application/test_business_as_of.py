"""The books as of a business date (issue 9 item 3): a simulated March 2026 in Europe/Berlin,
across the clocks going forward on Sunday 29 March (02:00 CET -> 03:00 CEST), figures at
three business dates computed by hand below, never by the code under test.

Tariff 0.40 EUR/kWh excl. VAT, 19 % VAT: 25 kWh = 10.00 + 1.90 = 11.90; 10 kWh = 4.00 +
0.76 = 4.76. Partner P1: monthly pool of 20.00, driver `c` enrolled (own model post-paid).

In the order the ledger received them (UTC; Berlin is UTC+1 until 29 March 01:00 UTC,
UTC+2 after):
  1. top-up w 50.00 (bank transfer), 2 March 08:00
  2. tx1 w 25 kWh, 10 March 10:00-11:00                       wallet -11.90
  3. tx2 post 10 kWh, 15 March 10:00-11:00, card charge 4.76 paid 15 March 11:05
  4. tx3 post 25 kWh, 28 March 21:30-22:30 (23:30 CET, 28th); charge 11.90 paid 29 March
     08:00 (10:00 CEST, 29th)
  5. tx5 c 25 kWh, 29 March 19:00-20:00 (22:00 CEST): the partner pays all 11.90
  6. tx6 w 25 kWh, 29 March 21:30-22:30: starts 23:30 CEST on the 29th, ends 00:30 CEST
     on the 30th                                              wallet -11.90
  then, LATE (recorded after all of the above, business times before them):
  7. top-up w 20.00, 20 March 12:00                           wallet +20.00
  8. tx7 w 10 kWh (offline session), 25 March 09:00-10:00     wallet -4.76
  9. tx4 c 25 kWh, 20 March 09:00-10:00: the pool has 8.10 left (tx5 used 11.90), so the
     partner pays 8.10 and c's card 3.80 (charge never answered)
  10. clock 3 April 00:00: the March period (ends 1 April 00:00 CEST = 31 March 22:00 UTC)
     is settled after its 48 h grace: partner invoice 11.90 + 8.10 = 20.00.

As of 28 March (until 28 March 22:59:59.999999 UTC): wallet 50 - 11.90 + 20 - 4.76 = 53.34;
settled tx1 tx2 tx3 tx4 tx7; documents: 2 top-up receipts + receipts of tx1 tx2 tx3 tx7
and c's share of tx4 = 7; debts: post 11.90 (tx3 answered on the 29th), c 3.80; pool 8.10
(only tx4 had happened: the stored running total, 20.00, counts tx5 first).
As of 29 March (a 23-hour day: until 29 March 21:59:59.999999 UTC): tx5 settled, tx6 open
(it ended at 22:30 UTC, after the 29th in Berlin, though before 23:00 UTC, the end a fixed
+01:00 would give); wallet 53.34; 7 documents (tx5 gave the driver no receipt); debts: c
3.80; pool 20.00.
As of 3 April: tx6 settled, wallet 41.44; 9 documents (+ tx6 receipt 11.90, partner
invoice 20.00); debts: c 3.80; pool 20.00.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.messages import EnrolmentChanged, PartnerConfigured
from projections.business_as_of import BusinessCutoff, CutoffError, business_as_of_report
from projections.report import current_report
from tests.application.test_debt_payment import indebted, paid
from tests.builders import (
    LedgerDriver,
    RecordingLedgerDriver,
    driver,
    envelope,
    location,
    payment_result,
    session_events,
    tariff,
    tenant,
    tick,
    top_up,
)

CONFIGURED_AT = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def charge_for(d: LedgerDriver, session_id: str) -> dict[str, Any]:
    [command] = [c for c in d.new_commands()
                 if c.get("action") == "charge" and c.get("reference") == f"session:{session_id}"]
    return command


def live_month(d: LedgerDriver, before_late: Callable[[], None] = lambda: None
               ) -> LedgerDriver:
    """The month of the module docstring, in the order the ledger receives it;
    `before_late` runs before the late arrivals are applied."""
    d.apply(
        tenant(time_zone="Europe/Berlin"), tariff(), location("L1"),
        driver("w", "wallet"), driver("post", "post_paid"), driver("c", "post_paid"),
        PartnerConfigured(**envelope("t1", CONFIGURED_AT), effective_at=CONFIGURED_AT,
                          partner_id="P1", billing_period="monthly",
                          pool_limit=Decimal("20.00")),
        EnrolmentChanged(**envelope("t1", CONFIGURED_AT), effective_at=CONFIGURED_AT,
                         partner_id="P1", driver_id="c", action="enrol"),
    )
    d.apply(top_up("w", "50.00", at=at(2, 8)))
    d.apply_each(session_events("tx1", "w", "25", start=at(10, 10)))
    d.new_commands()
    d.apply_each(session_events("tx2", "post", "10", start=at(15, 10)))
    d.apply(payment_result(charge_for(d, "tx2"), "charge_succeeded", at=at(15, 11, 5)))
    d.apply_each(session_events("tx3", "post", "25", start=at(28, 21, 30)))
    d.apply(payment_result(charge_for(d, "tx3"), "charge_succeeded", at=at(29, 8)))
    d.apply_each(session_events("tx5", "c", "25", start=at(29, 19)))
    d.apply_each(session_events("tx6", "w", "25", start=at(29, 21, 30)))
    # Late arrivals: recorded after everything above, business times before some of it.
    before_late()
    d.apply(top_up("w", "20.00", at=at(20, 12)))
    d.apply_each(session_events("tx7", "w", "10", start=at(25, 9)))
    d.apply_each(session_events("tx4", "c", "25", start=at(20, 9)))
    d.apply(tick(at(3, 0, month=4)))
    return d


@pytest.fixture(scope="module")
def month() -> LedgerDriver:
    return live_month(LedgerDriver())


def view(d: LedgerDriver, asked: str) -> dict[str, Any]:
    return business_as_of_report(d.ledger, BusinessCutoff.parse(asked)).report


def wallets(report: dict[str, Any]) -> dict[str, str]:
    return {w["driver_id"]: w["balance"] for w in report["wallets"]}


def settled(report: dict[str, Any]) -> dict[str, list[tuple[str, str, str]]]:
    return {s["session_id"]: [(p["payer"], p["id"], p["amount_incl_vat"])
                              for p in s["charged_to"]] for s in report["sessions"]}


def documents(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((i["kind"], i["bill_to"], i["total_incl_vat"]) for i in report["invoices"])


def debts(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {d["driver_id"]: (d["outstanding"], d["overdue"]) for d in report["debts"]}


def pools(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(p["partner_id"], p["pool_cap"], p["pool_used"])
            for p in report["corporate_accounts"]]


RECEIPTS_TO_28_MARCH = [
    ("session_receipt", "c", "3.80"), ("session_receipt", "post", "11.90"),
    ("session_receipt", "post", "4.76"), ("session_receipt", "w", "11.90"),
    ("session_receipt", "w", "4.76"),
    ("wallet_top_up", "w", "20.00"), ("wallet_top_up", "w", "50.00"),
]


def test_28_march_has_the_late_arrivals_and_not_what_happened_after(
    month: LedgerDriver,
) -> None:
    report = view(month, "2026-03-28")
    assert report["as_of"]["tenants"] == {
        "t1": {"time_zone": "Europe/Berlin", "until": "2026-03-28T22:59:59.999999Z"}}
    assert wallets(report) == {"w": "53.34"}
    assert settled(report) == {
        "tx1": [("wallet", "w", "11.90")],
        "tx2": [("driver", "post", "4.76")],
        "tx3": [("driver", "post", "11.90")],
        "tx4": [("partner", "P1", "8.10"), ("driver", "c", "3.80")],
        "tx7": [("wallet", "w", "4.76")],
    }
    assert report["sessions_open"] == 0
    assert documents(report) == RECEIPTS_TO_28_MARCH
    assert debts(report) == {"post": ("11.90", "0.00"), "c": ("3.80", "0.00")}
    assert pools(report) == [("P1", "20.00", "8.10")]
    assert report["journal"]["unbalanced_entries"] == []
    assert report["journal"]["sum_of_postings"] == "0.00"


def test_29_march_is_23_hours_long_in_berlin(month: LedgerDriver) -> None:
    report = view(month, "2026-03-29")
    assert report["as_of"]["tenants"]["t1"]["until"] == "2026-03-29T21:59:59.999999Z"
    assert wallets(report) == {"w": "53.34"}, "tx6 ended at 00:30 CEST on the 30th"
    assert settled(report)["tx5"] == [("partner", "P1", "11.90")]
    assert "tx6" not in settled(report)
    assert report["sessions_open"] == 1, "tx6 started at 23:30 CEST on the 29th"
    assert documents(report) == RECEIPTS_TO_28_MARCH, "tx5: no receipt for the driver"
    assert debts(report) == {"c": ("3.80", "0.00")}, "tx3's charge was paid at 10:00 CEST"
    assert pools(report) == [("P1", "20.00", "20.00")]


def test_3_april_has_the_period_settled(month: LedgerDriver) -> None:
    report = view(month, "2026-04-03")
    assert wallets(report) == {"w": "41.44"}
    assert settled(report)["tx6"] == [("wallet", "w", "11.90")]
    assert report["sessions_open"] == 0
    assert len(report["sessions"]) == 7
    assert documents(report) == sorted([
        *RECEIPTS_TO_28_MARCH, ("session_receipt", "w", "11.90"),
        ("corporate_settlement", "P1", "20.00"),
    ])
    assert debts(report) == {"c": ("3.80", "0.00")}
    assert pools(report) == [("P1", "20.00", "20.00")]


def test_a_local_time_and_an_instant_cut_within_the_day(month: LedgerDriver) -> None:
    # 29 March 22:45 CEST = 20:45 UTC: tx5 (ended 22:00 CEST) in, tx6 not started.
    local = view(month, "2026-03-29T22:45")
    assert local["as_of"]["tenants"]["t1"]["until"] == "2026-03-29T20:45:00Z"
    assert "tx5" in settled(local) and local["sessions_open"] == 0
    # The same instant given in UTC, and one a second before tx5 ended.
    assert view(month, "2026-03-29T20:45:00Z")["sessions"] == local["sessions"]
    before = view(month, "2026-03-29T19:59:59Z")
    assert "tx5" not in settled(before) and before["sessions_open"] == 1


def test_after_everything_the_view_is_the_live_report(month: LedgerDriver) -> None:
    report = view(month, "2999-12-31")
    assert report.pop("as_of")["basis"] == "business_time"
    report.pop("debts")
    assert report == current_report(month.ledger)


DATES = ("2026-03-28", "2026-03-29", "2026-04-03")


@pytest.fixture(scope="module")
def recorded_month() -> RecordingLedgerDriver:
    d = RecordingLedgerDriver()
    live_month(d)
    return d


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_the_views_do_not_depend_on_how_the_messages_were_batched(
    recorded_month: RecordingLedgerDriver, data: st.DataObject,
) -> None:
    """Each event carries its own message's business time, whichever batch it came in."""
    messages = [m for batch in recorded_month.batches for m in batch]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(messages) - 1), max_size=8)))
    rebatched = LedgerDriver()
    for start, end in zip([0, *cuts], [*cuts, len(messages)], strict=True):
        rebatched.apply(*messages[start:end])
    for day in DATES:
        assert view(rebatched, day) == view(recorded_month, day)


def test_one_tenants_view_is_its_part_of_the_whole(month: LedgerDriver) -> None:
    whole = view(month, "2026-03-29")
    alone = business_as_of_report(month.ledger, BusinessCutoff.parse("2026-03-29"),
                                  "t1").report
    assert alone == whole, "the month has one tenant"
    nobody = business_as_of_report(month.ledger, BusinessCutoff.parse("2026-03-29"),
                                   "t2").report
    assert (nobody["sessions"], nobody["wallets"], nobody["debts"]) == ([], [], [])
    assert nobody["as_of"]["tenants"] == {}


def test_before_anything_happened_the_view_is_empty(month: LedgerDriver) -> None:
    report = view(month, "2026-03-01")
    assert (report["sessions"], report["wallets"], report["invoices"]) == ([], [], [])
    assert report["debts"] == [] and report["corporate_accounts"] == []


@pytest.mark.parametrize("text", ["2026-13-01", "yesterday", "2026-03-32", "2026-03-29T25:00",
                                  "2026-03-29" + "0" * 40, "0001-01-01T00:00:00+01:00",
                                  "9999-12-31", "1969-12-31T23:00"])
def test_a_malformed_cutoff_is_refused(text: str) -> None:
    with pytest.raises(CutoffError):
        BusinessCutoff.parse(text)


def test_debt_becomes_overdue_when_the_last_retry_fails_and_is_gone_once_paid() -> None:
    """tests/application/test_debt_payment.py's driver (UTC tenant, one retry after 1 h):
    the 10 kWh session (4.76) ends 2 March 09:00, the charge fails then, the retry fails at
    10:00 (overdue), the driver pays at the counter on 3 March 09:00."""
    d, _retry = indebted()
    d.apply(paid("4.76"))
    assert debts(view(d, "2026-03-02T09:30Z")) == {"bad": ("4.76", "0.00")}
    assert debts(view(d, "2026-03-02")) == {"bad": ("4.76", "4.76")}
    assert debts(view(d, "2026-03-03T08:59Z")) == {"bad": ("4.76", "4.76")}
    assert debts(view(d, "2026-03-03")) == {}
