"""Overdue debt paid outside the retry schedule (issue 10: "a message to pay overdue debt").

A declined card runs out of retries (schedule +1 h), the debt blocks new sessions; the driver
pays the whole debt at the counter: the charge is settled from that payment, can no longer
be collected by a late PSP answer, and the driver may charge again."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from ledger.domain.driver_account import DriverAccount
from ledger.messages import DebtPaymentReceived
from tests.builders import (
    T0,
    LedgerDriver,
    driver,
    envelope,
    location,
    session_events,
    tariff,
    tenant,
    tick,
)

END = T0 + timedelta(minutes=60)


def indebted() -> tuple[LedgerDriver, dict[str, object]]:
    d = LedgerDriver()
    d.apply(tenant(retry_schedule_hours=[1]), tariff(), location(),
            driver("bad", "post_paid", token="tok-decline"))
    d.apply_each(session_events("tx1", "bad", "10"))
    [first] = d.new_commands()
    d.answer(first, "charge_failed", at=END)
    d.apply(tick(END + timedelta(hours=1)))
    [retry] = d.new_commands()
    d.answer(retry, "charge_failed", at=END + timedelta(hours=1))
    assert d.get(DriverAccount, DriverAccount.create_id("t1", "bad")).has_overdue_debt
    return d, retry


def paid(amount: str, reference: str = "counter-1", method: str = "cash") -> DebtPaymentReceived:
    return DebtPaymentReceived(**envelope("t1", END + timedelta(days=1)), driver_id="bad",
                               amount=Decimal(amount), currency="EUR", method=method,
                               reference=reference)


def test_paying_the_whole_debt_at_the_counter_clears_it_and_unblocks_the_driver() -> None:
    d, late = indebted()
    d.apply(paid("4.76"))
    account = d.get(DriverAccount, DriverAccount.create_id("t1", "bad"))
    assert not account.has_overdue_debt
    assert d.balance("driver_receivable:bad") == 0
    assert d.balance("bank_clearing") == Decimal("4.76")
    # A late success of the failed attempt collects nothing more.
    d.answer(late, "charge_succeeded", at=END + timedelta(days=2))
    [dead] = d.dead_letters()
    assert "already paid" in dead.reason
    d.apply_each(session_events("tx2", "bad", "1", start=END + timedelta(days=3)))
    assert not [c for c in d.new_commands() if c["_type"] == "StopSessionRequested"]


def test_a_payment_that_is_not_the_debt_or_repeats_its_reference_is_refused() -> None:
    d, _ = indebted()
    d.apply(paid("1.00"))
    assert "does not match the overdue debt of 4.76 EUR" in d.refusals()[-1].reason
    d.apply(paid("4.76", reference="app-7", method="card"))
    d.apply(paid("4.76", reference="app-7", method="card"))
    assert "no overdue debt" in d.refusals()[-1].reason
    assert d.balance("psp_clearing") == Decimal("4.76")
