"""The cost a driver pays, told to the CSMS while charging and at the end (issue 13; OCPP
2.0.1 I02/I03). Tariff 0.40 EUR/kWh + 19 % VAT: each kWh is 0.476."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from ledger.messages import EnrolmentChanged, PartnerConfigured
from tests.builders import (
    T0,
    LedgerDriver,
    driver,
    envelope,
    location,
    session_events,
    tariff,
    tenant,
)


def network(**settings: Any) -> LedgerDriver:
    d = LedgerDriver()
    d.apply(tenant(**settings), tariff(), location(), driver("post", "post_paid"))
    d.new_commands()
    return d


def updates(d: LedgerDriver) -> list[dict[str, Any]]:
    return [c for c in d.commands() if c["_type"] == "SessionCostUpdated"]


def test_no_cost_updates_unless_the_tenant_asks_for_them() -> None:
    d = network()
    d.apply_each(session_events("tx1", "post", "10", updates=5))
    assert updates(d) == []


def test_updates_follow_the_step_never_decrease_and_end_at_the_settled_total() -> None:
    d = network(cost_update_step=Decimal("1.00"), cost_update_interval_s=3600)
    d.apply_each(session_events("tx1", "post", "10", updates=9))  # +0.476 every 6 minutes
    sent = updates(d)
    running = [u for u in sent if not u["final"]]
    # 0.48, 0.95 stay below the step; 1.43 goes; 1.90, 2.38 are within 1.00 of it; ...
    assert [u["total_cost"] for u in running] == ["1.43", "2.86", "4.28"]
    assert [u["sequence"] for u in sent] == [0, 1, 2, 3]
    final = sent[-1]
    assert (final["final"], final["total_cost"], final["full_price"]) == (True, "4.76", "4.76")
    assert all(u["transaction_id"] == "tx1" and u["currency"] == "EUR" for u in sent)


def test_a_quiet_session_gets_an_update_once_the_interval_passed() -> None:
    d = network(cost_update_step=Decimal("50.00"), cost_update_interval_s=600)
    d.apply_each(session_events("tx1", "post", "2", minutes=60, updates=5))  # every 10 min
    running = [u for u in updates(d) if not u["final"]]
    assert len(running) == 5, "one per interval, never more often"
    totals = [Decimal(u["total_cost"]) for u in running]
    assert totals == sorted(totals)


def test_an_update_applied_again_keeps_its_id_and_sends_nothing_new() -> None:
    d = network(cost_update_step=Decimal("0.50"))
    events = session_events("tx1", "post", "10", updates=3)
    d.apply_each(events[:3])
    before = [u["event_id"] for u in updates(d)]
    d.apply(events[1], events[2])  # redelivered: duplicates
    assert [u["event_id"] for u in updates(d)] == before


def test_a_partner_covered_session_shows_what_the_driver_pays() -> None:
    configured = T0 - timedelta(days=30)
    common = {**envelope("t1", configured), "effective_at": configured}
    d = network(cost_update_step=Decimal("0.50"))
    d.apply(PartnerConfigured(**common, partner_id="P1", billing_period="monthly",
                              pool_limit=Decimal("2.00")),
            EnrolmentChanged(**{**common, **envelope("t1", configured)}, partner_id="P1",
                             driver_id="post", action="enrol"))
    d.apply_each(session_events("tx1", "post", "10", updates=4))
    sent = updates(d)
    assert sent[-1]["total_cost"] == "2.76" and sent[-1]["full_price"] == "4.76"
    assert all(Decimal(u["total_cost"]) <= Decimal("2.76") for u in sent)
