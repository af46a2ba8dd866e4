"""Each per-session billing model, end to end through the ledger on the in-memory store.

Tariff: 0.40 EUR/kWh excl. VAT, 19 % VAT (0.476 incl). 10 kWh -> 4.00 net, 0.76 VAT, 4.76.
"""

from datetime import timedelta
from decimal import Decimal

from ledger.domain.driver_account import DriverAccount
from ledger.domain.payment import Hold
from ledger.domain.session import ChargingSession
from ledger.domain.wallet import Wallet
from tests.builders import (
    ENERGY_TARIFF,
    T0,
    LedgerDriver,
    driver,
    location,
    session_events,
    tariff,
    tenant,
    terminal_authorized,
    tick,
    top_up,
    tx_event,
)
from tests.builders import (
    settlement_of as settlement,
)


def network(**tenant_settings: object) -> LedgerDriver:
    d = LedgerDriver()
    d.apply(
        tenant(**tenant_settings), tariff(), location(), location("FREE", open_access=True),
        driver("post", "post_paid"), driver("bad", "post_paid", token="tok-decline"),
        driver("pre", "pre_authorization"), driver("w", "wallet"),
        driver("auto", "wallet", auto_top_up_threshold=Decimal("5"),
               auto_top_up_amount=Decimal("20")),
    )
    d.new_commands()
    return d



def journal_balances(d: LedgerDriver) -> None:
    entries = d.journal()
    assert all(sum(p.amount for p in e.postings) == 0 for e in entries)
    assert len({e.entry_id for e in entries}) == len(entries), "an entry was booked twice"


def test_open_access_is_priced_and_booked_as_operator_absorbed_cost() -> None:
    d = network()
    d.apply_each(session_events("tx1", "post", "10", location_id="FREE"))
    s = settlement(d, "tx1")
    assert s["billing_model"] == "open_access"
    assert s["total_incl_vat"] == Decimal("4.76")
    assert s["charged_to"] == [{"payer": "operator", "id": "FREE", "amount_incl_vat": "4.76"}]
    assert d.balance("operator_absorbed_cost") == Decimal("4.76")
    assert d.new_commands() == []
    journal_balances(d)


def test_post_paid_charges_the_card_at_the_end_and_clears_the_receivable() -> None:
    d = network()
    d.apply_each(session_events("tx1", "post", "10"))
    s = settlement(d, "tx1")
    assert (s["billing_model"], s["total_excl_vat"], s["total_incl_vat"]) == (
        "post_paid", Decimal("4.00"), Decimal("4.76"))
    assert s["receipt_number"] == "R-000001"
    [charge] = d.new_commands()
    assert (charge["action"], charge["amount"], charge["payment_method_token"]) == (
        "charge", "4.76", "tok-ok")
    assert d.balance("driver_receivable:post") == Decimal("4.76")
    d.answer(charge, "charge_succeeded")
    assert d.balance("driver_receivable:post") == 0
    assert d.balance("psp_clearing") == Decimal("4.76")
    assert d.balance("revenue") == Decimal("-4.00")
    assert d.balance("vat_payable:19") == Decimal("-0.76")
    journal_balances(d)


def test_post_paid_retries_on_schedule_then_becomes_overdue_debt_that_blocks_sessions() -> None:
    d = network(retry_schedule_hours=[1, 6])
    d.apply_each(session_events("tx1", "bad", "10"))
    end = T0 + timedelta(minutes=60)
    [first] = d.new_commands()
    d.answer(first, "charge_failed", at=end)
    d.apply(tick(end + timedelta(minutes=59)))
    assert d.new_commands() == [], "no retry before +1 h"
    d.apply(tick(end + timedelta(hours=1)))
    [second] = d.new_commands()
    assert second["event_id"] != first["event_id"]
    assert second["idempotency_key"] != first["idempotency_key"]
    d.answer(second, "charge_failed", at=end + timedelta(hours=1))
    d.apply(tick(end + timedelta(hours=6)))
    [third] = d.new_commands()
    d.answer(third, "charge_failed", at=end + timedelta(hours=6))
    account = d.get(DriverAccount, DriverAccount.create_id("t1", "bad"))
    assert account.has_overdue_debt
    # A new session by the indebted driver is refused: one stop request with the reason.
    d.apply_each(session_events("tx2", "bad", "1", start=end + timedelta(days=1))[:1])
    [stop] = d.new_commands()
    assert stop["_type"] == "StopSessionRequested"
    assert stop["reason"] == "driver has overdue debt"
    journal_balances(d)


def test_pre_authorization_holds_then_captures_the_cost_and_releases_the_rest() -> None:
    d = network()
    events = session_events("tx1", "pre", "10")
    d.apply(events[0])
    [authorize] = d.new_commands()
    assert (authorize["action"], authorize["amount"]) == ("authorize", "25.00")
    d.answer(authorize, "hold_authorized")
    d.apply_each(events[1:])
    commands = {c["action"]: c for c in d.new_commands()}
    assert commands["capture"]["amount"] == "4.76"
    assert commands["release"]["amount"] == "20.24"
    d.answer(commands["capture"], "captured")
    d.answer(commands["release"], "released")
    hold = d.get(Hold, Hold.create_id("t1", "tx1"))
    assert hold.resolution == "resolved"
    assert d.balance("driver_receivable:pre") == 0
    journal_balances(d)


def test_a_capture_the_psp_refuses_is_charged_to_the_card_on_file_instead() -> None:
    d = network()
    events = session_events("tx1", "pre", "10")
    d.apply(events[0])
    [authorize] = d.new_commands()
    d.answer(authorize, "hold_authorized")
    d.apply_each(events[1:])
    commands = {c["action"]: c for c in d.new_commands()}
    d.answer(commands["capture"], "capture_failed")  # e.g. the authorization had expired
    assert d.balance("driver_receivable:pre") == Decimal("4.76"), "still owed"
    assert d.balance("psp_clearing") == 0, "nothing came in"
    [charge] = d.new_commands()
    assert (charge["action"], charge["amount"], charge["reference"]) == (
        "charge", "4.76", "failed_capture:tx1")
    d.answer(commands["release"], "released")
    hold = d.get(Hold, Hold.create_id("t1", "tx1"))
    assert (hold.resolution, hold.capture_failure) == ("resolved", "capture failed")
    assert d.answer(commands["capture"], "captured").dead_lettered == 1, "failed, never taken"
    d.answer(charge, "charge_succeeded")
    assert d.balance("driver_receivable:pre") == 0
    assert d.balance("psp_clearing") == Decimal("4.76")
    journal_balances(d)


def test_a_release_the_psp_refuses_is_recorded_and_moves_no_money() -> None:
    d = network()
    events = session_events("tx1", "pre", "10")
    d.apply(events[0])
    [authorize] = d.new_commands()
    d.answer(authorize, "hold_authorized")
    d.apply_each(events[1:])
    commands = {c["action"]: c for c in d.new_commands()}
    d.answer(commands["capture"], "captured")
    assert d.answer(commands["release"], "release_failed").applied == 1
    hold = d.get(Hold, Hold.create_id("t1", "tx1"))
    assert (hold.resolution, hold.released, hold.release_failure) == (
        "resolved", False, "release failed")
    assert d.new_commands() == []
    assert d.balance("driver_receivable:pre") == 0
    journal_balances(d)


def test_pre_authorization_stops_once_near_the_hold_and_bills_the_overshoot_post_paid() -> None:
    d = network()
    # 60 kWh at 0.476 = 28.56 > 25.00 hold; 95 % of 25 = 23.75 reached on an update.
    events = session_events("tx1", "pre", "60", updates=5)
    d.apply(events[0])
    [authorize] = d.new_commands()
    d.answer(authorize, "hold_authorized")
    d.apply_each(events[1:])
    commands = d.new_commands()
    stops = [c for c in commands if c["_type"] == "StopSessionRequested"]
    assert len(stops) == 1
    by_action = {c.get("action"): c for c in commands}
    assert by_action["capture"]["amount"] == "25.00"
    assert "release" not in by_action
    assert by_action["charge"]["amount"] == "3.56"
    assert settlement(d, "tx1")["total_incl_vat"] == Decimal("28.56")


def test_a_declined_hold_stops_the_session() -> None:
    d = network()
    events = session_events("tx1", "pre", "1")
    d.apply(events[0])
    [authorize] = d.new_commands()
    d.answer(authorize, "hold_failed")
    [stop] = d.new_commands()
    assert stop["reason"] == "pre-authorization declined"


def test_wallet_is_debited_at_the_end_and_may_overshoot_below_zero() -> None:
    d = network()
    d.apply(top_up("w", "5.00"))
    d.apply_each(session_events("tx1", "w", "20", updates=3))
    stops = [c for c in d.new_commands() if c["_type"] == "StopSessionRequested"]
    assert len(stops) == 1, "stopped near the balance"
    wallet = d.get(Wallet, Wallet.create_id("t1", "w"))
    assert wallet.balance == Decimal("5.00") - Decimal("9.52")
    assert d.balance("wallet:w") == -wallet.balance
    journal_balances(d)


def test_auto_top_up_charges_the_card_during_the_session_so_it_is_not_interrupted() -> None:
    d = network()
    d.apply(top_up("auto", "10.00"))
    d.apply_each(session_events("tx1", "auto", "20", updates=3))
    commands = d.new_commands()
    assert [c["_type"] for c in commands if c["_type"] == "StopSessionRequested"] == []
    charges = [c for c in commands if c.get("action") == "charge"]
    assert len(charges) == 1 and charges[0]["amount"] == "20"
    d.answer(charges[0], "charge_succeeded")
    wallet = d.get(Wallet, Wallet.create_id("t1", "auto"))
    assert wallet.balance == Decimal("10.00") + Decimal("20") - Decimal("9.52")
    assert d.balance("wallet:auto") == -wallet.balance
    journal_balances(d)


def test_terminal_session_captures_from_the_terminal_authorization() -> None:
    d = network()
    d.apply(terminal_authorized("TR1", "30.00"))
    d.apply_each(session_events("tx1", None, "10", terminal_reference="TR1"))
    s = settlement(d, "tx1")
    assert s["billing_model"] == "ad_hoc_terminal"
    assert s["charged_to"] == [{"payer": "terminal", "id": "TR1", "amount_incl_vat": "4.76"}]
    commands = {c["action"]: c for c in d.new_commands()}
    assert commands["capture"]["amount"] == "4.76"
    assert commands["release"]["amount"] == "25.24"
    d.answer(commands["capture"], "captured")
    assert d.balance("driver_receivable:terminal:TR1") == 0
    journal_balances(d)


def test_a_late_meter_update_is_folded_in_seq_no_order() -> None:
    in_order = network()
    events = session_events("tx1", "post", "10", updates=3)
    in_order.apply_each(events)
    shuffled = network()
    shuffled.apply_each([events[0], events[2], events[1], events[3], events[4]])
    assert settlement(in_order, "tx1")["total_incl_vat"] == settlement(
        shuffled, "tx1")["total_incl_vat"]


def test_a_session_missing_a_seq_no_settles_after_the_grace_period() -> None:
    d = network()
    events = session_events("tx1", "post", "10", updates=2)
    d.apply_each([events[0], events[1], events[3]])  # seqNo 2 never arrives
    session = d.get(ChargingSession, ChargingSession.create_id("t1", "tx1"))
    assert not session.is_settled
    d.apply(tick(T0 + timedelta(minutes=60 + 15)))
    assert settlement(d, "tx1")["total_incl_vat"] == Decimal("4.76")


def test_auto_top_up_runs_as_often_as_a_long_session_needs() -> None:
    d = network()
    d.apply(top_up("auto", "6.00"))
    # 100 kWh = 47.60: several top-ups of 20 are needed along the way.
    events = session_events("tx1", "auto", "100", updates=10)
    for event in events:
        d.apply(event)
        for command in d.new_commands():
            if command.get("action") == "charge":
                d.answer(command, "charge_succeeded")
    wallet = d.get(Wallet, Wallet.create_id("t1", "auto"))
    assert wallet.auto_top_ups >= 2
    assert wallet.balance >= 0, "auto-top-up kept the wallet from running dry"
    assert d.balance("wallet:auto") == -wallet.balance
    journal_balances(d)


def test_a_long_terminal_reference_still_fits_the_psp_command() -> None:
    d = network()
    reference = "T" * 64
    d.apply(terminal_authorized(reference, "30.00"))
    d.apply_each(session_events("tx1", None, "10", terminal_reference=reference))
    commands = d.new_commands()
    assert {c["action"] for c in commands} == {"capture", "release"}
    assert all(len(c["reference"]) <= 64 for c in commands)


def test_a_driver_refused_for_debt_pays_post_paid_for_what_was_delivered() -> None:
    d = network(retry_schedule_hours=[1])
    d.apply_each(session_events("tx1", "bad", "10"))
    end = T0 + timedelta(minutes=60)
    [first] = d.new_commands()
    d.answer(first, "charge_failed", at=end)
    d.apply(tick(end + timedelta(hours=1)))
    [second] = d.new_commands()
    d.answer(second, "charge_failed", at=end + timedelta(hours=1))
    d.apply_each(session_events("tx2", "bad", "2", start=end + timedelta(days=1)))
    s = settlement(d, "tx2")
    assert s["billing_model"] == "post_paid"
    assert s["charged_to"] == [{"payer": "driver", "id": "bad", "amount_incl_vat": "0.95"}]


def test_a_tariff_change_during_a_session_never_reprices_it() -> None:
    d = network()
    events = session_events("tx1", "post", "10")
    d.apply(events[0])
    dearer = {**ENERGY_TARIFF, "elements": [{"price_components": [
        {"type": "ENERGY", "price": 0.80, "vat": 19.0, "step_size": 1}]}]}
    change = tariff(body=dearer)
    d.apply(change.model_copy(update={"effective_at": T0 + timedelta(minutes=1)}))
    d.apply_each(events[1:])
    assert settlement(d, "tx1")["total_incl_vat"] == Decimal("4.76")
    d.apply_each(session_events("tx2", "post", "10", start=T0 + timedelta(hours=2)))
    assert settlement(d, "tx2")["total_incl_vat"] == Decimal("9.52")


def test_a_drivers_new_model_applies_from_its_effective_time_only() -> None:
    d = network()
    events = session_events("tx1", "post", "10")
    d.apply(events[0])
    d.apply(driver("post", "wallet", at=T0 + timedelta(minutes=5)))
    d.apply_each(events[1:])
    assert settlement(d, "tx1")["billing_model"] == "post_paid"
    d.apply_each(session_events("tx2", "post", "1", start=T0 + timedelta(hours=2)))
    assert settlement(d, "tx2")["billing_model"] == "wallet"


def test_bad_payment_answers_are_dead_lettered_and_move_no_money() -> None:
    d = network()
    events = session_events("tx1", "pre", "10")
    d.apply(events[0])
    [authorize] = d.new_commands()
    d.answer(authorize, "hold_authorized")
    before = d.journal()
    assert d.answer(authorize, "hold_authorized").dead_lettered == 1, "a hold answers once"
    d.apply_each(events[1:])
    capture = next(c for c in d.new_commands() if c["action"] == "capture")
    assert d.answer(capture, "captured", amount="30.00").dead_lettered == 1, "above the hold"
    assert d.answer(capture, "charge_succeeded").dead_lettered == 1, "not an answer to it"
    unknown = {**capture, "event_id": "no-such-request"}
    assert d.answer(unknown, "captured").parked == 1, "its request may still be issued"
    assert d.journal()[: len(before)] == before
    assert d.balance("psp_clearing") == 0, "no capture was booked"
    assert d.answer(capture, "captured").applied == 1
    assert d.answer(capture, "captured").dead_lettered == 1, "captured once"
    assert d.balance("psp_clearing") == Decimal("4.76")
    assert d.give_up_waiting().dead_lettered == 1
    reasons = [letter.reason for letter in d.dead_letters()]
    assert any("already answered" in r for r in reasons)
    assert any("exceeds the hold" in r for r in reasons)
    assert any("unknown request" in r for r in reasons)
    journal_balances(d)


def test_events_of_an_unknown_session_location_or_tenant_are_dead_lettered() -> None:
    d = network()
    assert d.apply(*session_events("tx1", "post", "10", location_id="NOWHERE")[:1]
                   ).parked == 1
    assert d.apply(*session_events("tx2", "post", "10", tenant_id="other")[:1]
                   ).parked == 1
    assert d.give_up_waiting().dead_lettered == 2
    assert d.journal() == [] and d.new_commands() == []


# Regressions found by the state machine (tests/application/test_ledger_state_machine.py).
def test_a_terminal_authorization_pays_for_one_session_only() -> None:
    d = network()
    d.apply(terminal_authorized("TR1", "30.00"))
    d.apply_each(session_events("tx1", None, "10", terminal_reference="TR1"))
    d.apply_each(session_events("tx2", None, "10", terminal_reference="TR1",
                                start=T0 + timedelta(hours=3)))
    for command in d.new_commands():
        d.answer(command, {"capture": "captured", "release": "released"}[command["action"]])
    assert settlement(d, "tx2")["charged_to"] == [
        {"payer": "operator", "id": "L1", "amount_incl_vat": "4.76"}]
    assert d.balance("driver_receivable:terminal:TR1") == 0
    journal_balances(d)


def test_a_terminal_authorization_at_an_open_access_location_goes_back_to_the_card() -> None:
    d = network()
    d.apply(terminal_authorized("TR1", "30.00"))
    d.apply_each(session_events("tx1", None, "10", terminal_reference="TR1",
                                location_id="FREE"))
    assert settlement(d, "tx1")["billing_model"] == "open_access"
    assert [(c["action"], c["amount"]) for c in d.new_commands()] == [("release", "30.00")]


def test_a_top_up_reference_credits_once_whatever_the_event_id() -> None:
    d = network()
    first = top_up("w", "10.00")
    assert d.apply(first.model_copy(update={"event_id": "again"})).applied == 1
    assert d.apply(first).refused == 1
    assert d.get(Wallet, Wallet.create_id("t1", "w")).balance == Decimal("10.00")
    journal_balances(d)


def test_a_release_answered_with_another_amount_is_dead_lettered() -> None:
    d = network()
    d.apply(terminal_authorized("TR1", "30.00"))
    d.apply_each(session_events("tx1", None, "10", terminal_reference="TR1"))
    release = next(c for c in d.new_commands() if c["action"] == "release")
    assert d.answer(release, "released", amount="50.00").dead_lettered == 1
    assert d.answer(release, "released").applied == 1


def test_energy_of_a_session_that_ends_the_instant_it_starts_is_still_billed() -> None:
    d = network()
    d.apply(tx_event("tx1", "Started", 0, T0, 1_000_000, driver_id="post"))
    d.apply(tx_event("tx1", "Ended", 1, T0, 1_010_000, state="EVConnected"))
    assert settlement(d, "tx1")["total_incl_vat"] == Decimal("4.76")
