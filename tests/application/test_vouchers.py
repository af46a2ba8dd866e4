"""Vouchers end to end through the ledger on the in-memory store: issue, redeem, pay sessions.

Tariff: 0.40 EUR/kWh excl. VAT, 19 % VAT (0.476 incl). 10 kWh -> 4.00 net, 0.76 VAT, 4.76.
Batches are issued two days before T0, redeemed one day before, and expire 30 days after.
"""

from datetime import timedelta
from decimal import Decimal
from typing import Any

from ledger.domain.payment import Hold
from ledger.domain.voucher import HeldSessionCredit, Voucher
from ledger.domain.wallet import Wallet
from tests.builders import (
    T0,
    LedgerDriver,
    driver,
    issued_documents,
    location,
    redeem,
    session_events,
    tariff,
    tenant,
    terminal_authorized,
    top_up,
    voucher_batch,
    voucher_buying_partner,
)
from tests.builders import (
    settlement_of as settlement,
)


def network() -> LedgerDriver:
    d = LedgerDriver()
    d.apply(
        tenant(), tariff(), location(), location("L2"), location("FREE", open_access=True),
        driver("post", "post_paid"), driver("pre", "pre_authorization"), driver("w", "wallet"),
        voucher_buying_partner("acme"), tenant("t2"),
    )
    d.new_commands()
    return d



def voucher(d: LedgerDriver, code: str, tenant_id: str = "t1") -> Voucher:
    found: Voucher = d.get(Voucher, Voucher.create_id(tenant_id, code))
    return found


def held_codes(d: LedgerDriver, driver_id: str) -> list[str]:
    held: HeldSessionCredit = d.get(HeldSessionCredit, HeldSessionCredit.create_id("t1", driver_id))
    return list(held.codes)


def assert_books_balance(d: LedgerDriver) -> None:
    entries = d.journal()
    assert all(sum(p.amount for p in e.postings) == 0 for e in entries)
    assert sum(p.amount for e in entries for p in e.postings) == 0
    assert len({e.entry_id for e in entries}) == len(entries), "an entry was booked twice"


# What a refused message may leave: its reason, and the mark that it was processed.
# The refusal's reason and processed mark, and its wait in the parking lot.
REFUSAL_TRAIL = {"Refusal.Refused", "ProcessedBatch.Processed", "ParkingLot.Opened",
                 "ParkingLot.Parked", "ParkingLot.Released"}


def footprint(d: LedgerDriver) -> list[tuple[str, str]]:
    """Every stored event except the refusal trail (its reason, the processed mark)."""
    events = [
        d.ledger.mapper.to_domain_event(n)
        for n in d.ledger.recorder.select_notifications(start=1, limit=1_000_000)
    ]
    return [
        (type(e).__qualname__, str(e.originator_id)) for e in events
        if type(e).__qualname__ not in REFUSAL_TRAIL
    ]


def assert_refused_without_change(d: LedgerDriver, message: Any, reason: str) -> None:
    before = (footprint(d), [e.to_dict() for e in d.journal()], d.commands())
    result = d.apply(message)
    if result.parked:  # what it names may still come; it does not
        result = d.give_up_waiting()
    assert result.refused == 1, result
    assert d.refusals()[-1].reason.startswith(reason)
    assert (footprint(d), [e.to_dict() for e in d.journal()], d.commands()) == before
    assert_books_balance(d)


# ---------------------------------------------------------------- issue and redeem
def test_a_balance_voucher_tops_up_the_wallet_as_a_campaign_discount() -> None:
    d = network()
    d.apply(voucher_batch("spring", ["BAL-1"], kind="balance", amount="15.00"))
    assert d.journal() == [], "a campaign books nothing until its value is used"
    d.apply(redeem("BAL-1", "w"))
    wallet = d.get(Wallet, Wallet.create_id("t1", "w"))
    assert wallet.balance == Decimal("15.00")
    assert d.balance("wallet:w") == -wallet.balance
    assert d.balance("discounts") == Decimal("15.00")
    assert voucher(d, "BAL-1").driver_id == "w"
    assert_books_balance(d)


def test_a_partner_bought_balance_voucher_moves_its_credit_into_the_wallet() -> None:
    d = network()
    d.apply(voucher_batch("gift", ["G-1", "G-2"], kind="balance", amount="20.00",
                          partner_id="acme", price_per_code_net="16.81", vat_rate_percent="19"))
    d.apply(redeem("G-1", "w"))
    assert d.get(Wallet, Wallet.create_id("t1", "w")).balance == Decimal("20.00")
    assert d.balance("voucher_credit:G-1") == 0
    assert d.balance("voucher_credit:G-2") == Decimal("-20.00"), "G-2 is still owed"
    assert_books_balance(d)


def test_a_partner_bought_batch_invoices_the_partner() -> None:
    d = network()
    # 3 codes of 10.00 sold at 8.00 net + 19 % VAT: 24.00 + 4.56 = 28.56 for 30.00 of credit.
    d.apply(voucher_batch("fleet", ["F-1", "F-2", "F-3"], amount="10.00", partner_id="acme",
                          price_per_code_net="8.00", vat_rate_percent="19"))
    [invoice] = issued_documents(d)
    assert invoice["number"] == "V-000001"
    assert (invoice["kind"], invoice["bill_to"], invoice["currency"]) == (
        "voucher_batch", "acme", "EUR")
    assert (invoice["total_excl_vat"], invoice["total_vat"], invoice["total_incl_vat"]) == (
        Decimal("24.00"), Decimal("4.56"), Decimal("28.56"))
    assert invoice["lines"][0]["vat_rate"] == "19"
    assert d.balance("partner_receivable:acme") == Decimal("28.56")
    assert [d.balance(f"voucher_credit:F-{n}") for n in (1, 2, 3)] == [Decimal("-10.00")] * 3
    assert d.balance("discounts") == Decimal("1.44")
    assert d.balance("vat_payable:19") == 0, "VAT is booked when the value is used"
    assert_books_balance(d)


def test_a_code_already_issued_refuses_the_whole_batch() -> None:
    d = network()
    d.apply(voucher_batch("first", ["A-1"]))
    assert_refused_without_change(
        d, voucher_batch("second", ["A-2", "A-1"]),
        "voucher batch second: voucher code 'A-1' already issued",
    )
    assert voucher_is_unknown(d, "A-2"), "a refused batch issues none of its codes"


def voucher_is_unknown(d: LedgerDriver, code: str) -> bool:
    from eventsourcing.application import AggregateNotFoundError

    try:
        voucher(d, code)
    except AggregateNotFoundError:
        return True
    return False


def test_a_batch_in_another_currency_is_dead_lettered() -> None:
    d = network()
    result = d.apply(voucher_batch("usd", ["U-1"], currency="USD"))
    assert result.dead_lettered == 1
    assert "tenant bills in EUR" in d.dead_letters()[0].reason
    assert voucher_is_unknown(d, "U-1")


def test_a_second_redemption_is_refused_and_changes_nothing() -> None:
    d = network()
    d.apply(voucher_batch("b", ["C-1"]), redeem("C-1", "post"))
    assert_refused_without_change(d, redeem("C-1", "w"), "voucher code 'C-1' is already redeemed")
    assert voucher(d, "C-1").driver_id == "post"


def test_an_expired_code_is_refused_and_changes_nothing() -> None:
    d = network()
    d.apply(voucher_batch("old", ["E-1"], kind="balance", expires_at=T0 - timedelta(hours=12)))
    assert_refused_without_change(
        d, redeem("E-1", "w", at=T0 - timedelta(hours=1)),
        "voucher code 'E-1' expired at 2026-03-01T20:00:00+00:00",
    )
    assert voucher(d, "E-1").redeemed_at is None


def test_an_unknown_code_is_refused_and_changes_nothing() -> None:
    d = network()
    assert_refused_without_change(d, redeem("NOPE", "w"), "unknown voucher code 'NOPE'")


def test_a_code_of_another_tenant_is_refused_as_unknown_and_changes_nothing() -> None:
    d = network()
    d.apply(voucher_batch("theirs", ["T2-1"], kind="balance", tenant_id="t2"))
    assert_refused_without_change(d, redeem("T2-1", "w"), "unknown voucher code 'T2-1'")
    assert voucher(d, "T2-1", tenant_id="t2").redeemed_at is None


def test_a_code_for_an_unknown_driver_is_refused_and_changes_nothing() -> None:
    d = network()
    d.apply(voucher_batch("b", ["D-1"]))
    assert_refused_without_change(d, redeem("D-1", "ghost"), "unknown driver 'ghost'")


# ---------------------------------------------------------------- paying sessions
def test_session_credit_pays_the_drivers_share_first_and_post_paid_charges_only_the_rest() -> None:
    d = network()
    d.apply(voucher_batch("promo", ["S-1"], amount="3.00"), redeem("S-1", "post"))
    d.apply_each(session_events("tx1", "post", "10"))
    s = settlement(d, "tx1")
    assert s["total_incl_vat"] == Decimal("4.76")
    assert s["charged_to"] == [
        {"payer": "voucher", "id": "S-1", "amount_incl_vat": "3.00"},
        {"payer": "driver", "id": "post", "amount_incl_vat": "1.76"},
    ]
    [charge] = d.new_commands()
    assert (charge["action"], charge["amount"]) == ("charge", "1.76")
    d.answer(charge, "charge_succeeded")
    assert d.balance("driver_receivable:post") == 0
    assert d.balance("discounts") == Decimal("3.00"), "campaign value booked when used"
    assert d.balance("revenue") == Decimal("-4.00")
    assert d.balance("vat_payable:19") == Decimal("-0.76")
    assert voucher(d, "S-1").remaining_amount == 0
    assert held_codes(d, "post") == [], "a used-up credit is no longer held"
    assert_books_balance(d)


def test_session_credit_covering_the_whole_session_leaves_no_psp_charge() -> None:
    d = network()
    d.apply(voucher_batch("promo", ["S-1"], amount="10.00"), redeem("S-1", "post"))
    d.apply_each(session_events("tx1", "post", "10"))
    assert d.new_commands() == []
    s = settlement(d, "tx1")
    assert s["charged_to"] == [{"payer": "voucher", "id": "S-1", "amount_incl_vat": "4.76"}]
    assert s["receipt_number"] == "R-000001"
    assert d.balance("driver_receivable:post") == 0
    assert voucher(d, "S-1").remaining_amount == Decimal("5.24")
    assert held_codes(d, "post") == ["S-1"]
    assert_books_balance(d)


def test_several_session_credits_pay_oldest_expiry_first_each_with_its_own_entry() -> None:
    d = network()
    d.apply(
        voucher_batch("late", ["LATE"], amount="2.00", expires_at=T0 + timedelta(days=60)),
        voucher_batch("soon", ["SOON"], amount="2.00", expires_at=T0 + timedelta(days=5)),
        redeem("LATE", "post"), redeem("SOON", "post"),
    )
    d.apply_each(session_events("tx1", "post", "10"))
    assert settlement(d, "tx1")["charged_to"] == [
        {"payer": "voucher", "id": "SOON", "amount_incl_vat": "2.00"},
        {"payer": "voucher", "id": "LATE", "amount_incl_vat": "2.00"},
        {"payer": "driver", "id": "post", "amount_incl_vat": "0.76"},
    ]
    voucher_entries = [e for e in d.journal() if e.entry_id.startswith("voucher:")]
    assert len(voucher_entries) == 2
    assert [c["amount"] for c in d.new_commands()] == ["0.76"]
    assert_books_balance(d)


def test_partner_bought_session_credit_is_drawn_from_voucher_credit() -> None:
    d = network()
    d.apply(voucher_batch("fleet", ["F-1"], amount="10.00", partner_id="acme",
                          price_per_code_net="8.40", vat_rate_percent="19"),
            redeem("F-1", "post"))
    assert d.balance("discounts") == 0, "8.40 + 19 % VAT is exactly the face value"
    d.apply_each(session_events("tx1", "post", "10"))
    assert d.balance("voucher_credit:F-1") == Decimal("-5.24")
    assert d.balance("driver_receivable:post") == 0
    assert d.new_commands() == []
    assert_books_balance(d)


def test_session_credit_pays_before_the_wallet_which_is_debited_only_the_rest() -> None:
    d = network()
    d.apply(top_up("w", "10.00"), voucher_batch("promo", ["S-1"], amount="1.00"),
            redeem("S-1", "w"))
    d.apply_each(session_events("tx1", "w", "10"))
    wallet = d.get(Wallet, Wallet.create_id("t1", "w"))
    assert wallet.balance == Decimal("10.00") - Decimal("3.76")
    assert d.balance("wallet:w") == -wallet.balance
    assert d.balance("driver_receivable:w") == 0
    assert settlement(d, "tx1")["charged_to"] == [
        {"payer": "voucher", "id": "S-1", "amount_incl_vat": "1.00"},
        {"payer": "wallet", "id": "w", "amount_incl_vat": "3.76"},
    ]
    assert_books_balance(d)


def test_session_credit_pays_before_the_hold_which_captures_only_the_rest() -> None:
    d = network()
    d.apply(voucher_batch("promo", ["S-1"], amount="4.00"), redeem("S-1", "pre"))
    events = session_events("tx1", "pre", "10")
    d.apply(events[0])
    [authorize] = d.new_commands()
    d.answer(authorize, "hold_authorized")
    d.apply_each(events[1:])
    commands = {c["action"]: c for c in d.new_commands()}
    assert commands["capture"]["amount"] == "0.76"
    assert commands["release"]["amount"] == "24.24"
    d.answer(commands["capture"], "captured")
    d.answer(commands["release"], "released")
    assert d.get(Hold, Hold.create_id("t1", "tx1")).resolution == "resolved"
    assert d.balance("driver_receivable:pre") == 0
    assert_books_balance(d)


def test_a_site_restricted_voucher_is_not_applied_elsewhere() -> None:
    d = network()
    d.apply(voucher_batch("site", ["L1-ONLY"], amount="10.00", site_location_ids=["L1"]),
            redeem("L1-ONLY", "post"))
    before = voucher(d, "L1-ONLY").version
    d.apply_each(session_events("tx1", "post", "10", location_id="L2"))
    assert settlement(d, "tx1")["charged_to"] == [
        {"payer": "driver", "id": "post", "amount_incl_vat": "4.76"}]
    assert [c["amount"] for c in d.new_commands()] == ["4.76"]
    unchanged = voucher(d, "L1-ONLY")
    assert (unchanged.version, unchanged.remaining_amount) == (before, Decimal("10.00"))
    d.apply_each(session_events("tx2", "post", "10", location_id="L1"))
    assert voucher(d, "L1-ONLY").remaining_amount == Decimal("5.24"), "applied at its site"
    assert_books_balance(d)


def test_an_expired_session_credit_no_longer_pays() -> None:
    d = network()
    d.apply(voucher_batch("short", ["S-1"], expires_at=T0 + timedelta(days=1)),
            redeem("S-1", "post"))
    d.apply_each(session_events("tx1", "post", "10", start=T0 + timedelta(days=2)))
    assert [c["amount"] for c in d.new_commands()] == ["4.76"]
    assert voucher(d, "S-1").remaining_amount == Decimal("10.00")
    assert_books_balance(d)


def test_open_access_and_terminal_sessions_never_use_vouchers() -> None:
    d = network()
    d.apply(voucher_batch("promo", ["S-1"]), redeem("S-1", "post"))
    d.apply_each(session_events("tx1", "post", "10", location_id="FREE"))
    d.apply(terminal_authorized("TR1", "30.00"))
    d.apply_each(session_events("tx2", None, "10", terminal_reference="TR1"))
    assert settlement(d, "tx1")["charged_to"][0]["payer"] == "operator"
    assert settlement(d, "tx2")["charged_to"][0]["payer"] == "terminal"
    assert voucher(d, "S-1").remaining_amount == Decimal("10.00")
    assert_books_balance(d)


def test_session_credit_counts_while_the_session_runs_so_the_wallet_is_not_stopped_early() -> None:
    d = network()
    # 5.00 in the wallet + 10.00 of credit; 20 kWh = 9.52: the wallet alone would be
    # stopped at 95 % of 5.00, together they cover it all.
    d.apply(top_up("w", "5.00"), voucher_batch("promo", ["S-9"], amount="10.00"),
            redeem("S-9", "w"))
    d.apply_each(session_events("tx1", "w", "20", updates=3))
    assert [c for c in d.commands() if c["_type"] == "StopSessionRequested"] == []
    assert settlement(d, "tx1")["charged_to"] == [
        {"payer": "voucher", "id": "S-9", "amount_incl_vat": "9.52"},
    ]
    assert d.get(Wallet, Wallet.create_id("t1", "w")).balance == Decimal("5.00")
    assert_books_balance(d)
