"""Refunds of settled sessions as credit notes (issue 8 item 1), on the in-memory store.

Tariff: 0.40 EUR/kWh excl. VAT, 19 % VAT. 10 kWh -> 4.00 net + 0.76 VAT = 4.76 gross;
25 kWh -> 10.00 + 1.90 = 11.90.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from ledger.domain.refund import CardRefund, SessionRefunds
from ledger.domain.wallet import Wallet
from ledger.messages import EnrolmentChanged, PartnerConfigured, RefundRequested
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
    terminal_authorized,
    tick,
    top_up,
)

END = T0 + timedelta(minutes=60)
ASKED_AT = END + timedelta(days=1)


def refund(tx: str, amount: str | None = None, *, event_id: str | None = None,
           currency: str = "EUR", at: Any = ASKED_AT) -> RefundRequested:
    return RefundRequested(
        **envelope("t1", at, event_id), session_id=tx, currency=currency,
        amount=None if amount is None else Decimal(amount), reason="charger fault",
    )


def network(*config: Any) -> LedgerDriver:
    d = LedgerDriver()
    d.apply(tenant(time_zone="Europe/Berlin"), tariff(), location(),
            driver("post", "post_paid"), driver("pre", "pre_authorization"),
            driver("w", "wallet"), top_up("w", "50.00"), *config)
    d.new_commands()
    return d


def paid_post_paid(d: LedgerDriver, tx: str = "tx1", kwh: str = "10") -> None:
    d.apply_each(session_events(tx, "post", kwh))
    [charge] = d.new_commands()
    d.answer(charge, "charge_succeeded", at=END)


def credit_notes(d: LedgerDriver) -> list[dict[str, Any]]:
    return [doc for doc in issued_documents(d) if doc["kind"] == "credit_note"]


def refunds_of(d: LedgerDriver, tx: str) -> SessionRefunds:
    refunds: SessionRefunds = d.get(SessionRefunds, SessionRefunds.create_id("t1", tx))
    return refunds


def assert_balanced(d: LedgerDriver) -> None:
    entries = d.journal()
    assert all(sum(p.amount for p in e.postings) == 0 for e in entries)
    assert len({e.entry_id for e in entries}) == len(entries)


# ---------------------------------------------------------------- card (post-paid)
def test_a_full_refund_of_a_card_session_reverses_the_sale_and_refunds_the_card() -> None:
    d = network()
    paid_post_paid(d)
    d.apply(refund("tx1"))
    [command] = d.new_commands()
    assert (command["action"], command["amount"], command["reference"]) == (
        "refund", "4.76", "tx1")
    assert command["psp_reference"].startswith("psp-")  # the charge's, as the PSP named it
    [note] = credit_notes(d)
    assert (note["number"], note["reference"], note["bill_to"]) == ("CN-000001", "R-000001",
                                                                    "post")
    assert (note["total_excl_vat"], note["total_vat"], note["total_incl_vat"]) == (
        Decimal("4.00"), Decimal("0.76"), Decimal("4.76"))
    assert "charger fault" in note["lines"][0]["description"]
    # Until the PSP pays out, the driver is owed the refund; then nothing is left anywhere.
    assert d.balance("driver_receivable:post") == Decimal("-4.76")
    d.answer(command, "refunded")
    for name in ("driver_receivable:post", "psp_clearing", "revenue", "vat_payable:19"):
        assert d.balance(name) == 0, name
    assert refunds_of(d, "tx1").credit_cdr_issued
    assert_balanced(d)


def test_partial_refunds_add_up_and_the_credit_cdr_comes_with_the_last() -> None:
    d = network()
    paid_post_paid(d)
    d.apply(refund("tx1", "1.00"))
    d.apply(refund("tx1", "2.00"))
    assert not refunds_of(d, "tx1").credit_cdr_issued
    d.apply(refund("tx1"))  # the rest
    amounts = [c["amount"] for c in d.new_commands()]
    assert amounts == ["1.00", "2.00", "1.76"]
    notes = credit_notes(d)
    assert [n["number"] for n in notes] == ["CN-000001", "CN-000002", "CN-000003"]
    assert sum(n["total_excl_vat"] for n in notes) == Decimal("4.00")
    assert sum(n["total_vat"] for n in notes) == Decimal("0.76")
    assert refunds_of(d, "tx1").total == Decimal("4.76")
    assert refunds_of(d, "tx1").credit_cdr_issued
    d.apply(refund("tx1", "0.01"))
    assert "above what remains refundable (0" in d.refusals()[-1].reason
    assert d.balance("revenue") == 0 and d.balance("vat_payable:19") == 0
    assert_balanced(d)


def test_a_refund_answered_twice_is_dead_lettered_the_second_time() -> None:
    d = network()
    paid_post_paid(d)
    d.apply(refund("tx1", "1.00"))
    [command] = d.new_commands()
    d.answer(command, "refunded")
    d.answer(command, "refunded")
    assert "already answered" in d.dead_letters()[-1].reason
    assert d.balance("psp_clearing") == Decimal("3.76")


def test_a_refund_the_psp_refuses_leaves_the_customer_owed_and_moves_no_money() -> None:
    d = network()
    paid_post_paid(d)
    d.apply(refund("tx1", "1.00"))
    [command] = d.new_commands()
    d.answer(command, "refund_failed")
    card_refund = d.get(CardRefund, CardRefund.create_id("t1", command["event_id"]))
    assert card_refund.failure == "refund failed" and not card_refund.refunded
    assert d.balance("psp_clearing") == Decimal("4.76")
    assert d.balance("driver_receivable:post") == Decimal("-1.00")  # owed to the driver
    d.answer(command, "refunded")
    assert "already answered" in d.dead_letters()[-1].reason


# ---------------------------------------------------------------- refusals
def test_unknown_unsettled_and_uncollected_sessions_are_refused_with_the_reason() -> None:
    d = network(driver("bad", "post_paid", token="tok-decline"))
    d.apply(refund("nope"))
    assert "unknown session 'nope'" in d.refusals()[-1].reason
    d.apply_each(session_events("tx1", "post", "10")[:-1])  # not ended
    d.apply(refund("tx1"))
    assert "is not settled yet" in d.refusals()[-1].reason
    d.apply_each(session_events("tx2", "bad", "10"))
    d.apply(refund("tx2", "1.00"))  # the card charge has not been collected
    assert "above what remains refundable (0)" in d.refusals()[-1].reason
    assert not credit_notes(d)
    assert not [c for c in d.new_commands() if c["action"] == "refund"]


def test_amounts_that_are_not_positive_above_the_paid_or_not_in_cents_are_refused() -> None:
    d = network()
    paid_post_paid(d)
    before = d.journal()
    for amount, reason in (("0", "must be positive"), ("-1.00", "must be positive"),
                           ("4.77", "above what remains refundable (4.76)"),
                           ("1.005", "not a whole number of EUR minor units")):
        d.apply(refund("tx1", amount))
        assert reason in d.refusals()[-1].reason, amount
    assert d.journal() == before
    assert not credit_notes(d) and not d.new_commands()


def test_a_duplicate_refund_changes_nothing_and_another_currency_is_dead_lettered() -> None:
    d = network()
    paid_post_paid(d)
    d.apply(refund("tx1", "1.00", event_id="refund-1"))
    d.apply(refund("tx1", "1.00", event_id="refund-1"))
    assert len(credit_notes(d)) == 1 and len(d.new_commands()) == 1
    d.apply(refund("tx1", "1.00", currency="USD"))
    assert "refund in USD" in d.dead_letters()[-1].reason
    assert refunds_of(d, "tx1").total == Decimal("1.00")


# ---------------------------------------------------------------- other payers
def test_a_wallet_session_is_refunded_to_the_wallet() -> None:
    d = network()
    d.apply_each(session_events("tx1", "w", "10"))
    d.apply(refund("tx1", "2.00"))
    wallet = d.get(Wallet, Wallet.create_id("t1", "w"))
    assert wallet.balance == Decimal("50.00") - Decimal("4.76") + Decimal("2.00")
    assert -d.balance("wallet:w") == wallet.balance
    assert not [c for c in d.new_commands() if c["action"] == "refund"]
    [note] = credit_notes(d)
    assert (note["bill_to"], note["reference"], note["total_incl_vat"]) == (
        "w", "R-000001", Decimal("2.00"))
    assert_balanced(d)


def test_a_pre_authorized_session_is_refunded_through_the_overshoot_first() -> None:
    d = network()
    d.apply_each(session_events("tx1", "pre", "60"))  # 28.56 gross, hold 25.00
    commands = d.new_commands()
    [authorize] = [c for c in commands if c["action"] == "authorize"]
    d.answer(authorize, "hold_authorized", at=T0)
    rest = d.new_commands()
    [capture] = [c for c in commands + rest if c["action"] == "capture"]
    [overshoot] = [c for c in commands + rest if c["action"] == "charge"]
    d.answer(capture, "captured", at=END)
    d.answer(overshoot, "charge_succeeded", at=END)
    d.new_commands()
    d.apply(refund("tx1", "5.00"))
    refunds = [(c["amount"], c["psp_reference"]) for c in d.new_commands()]
    assert refunds == [("3.56", f"psp-{overshoot['event_id'][:8]}"),
                       ("1.44", f"psp-{authorize['event_id'][:8]}")]
    assert_balanced(d)


def test_a_terminal_session_is_refunded_to_the_terminal_card() -> None:
    d = network()
    d.apply(terminal_authorized("TR1", "20.00"))
    d.apply_each(session_events("tx1", None, "10", terminal_reference="TR1"))
    [capture] = [c for c in d.new_commands() if c["action"] == "capture"]
    d.answer(capture, "captured", at=END)
    d.apply(refund("tx1"))
    [command] = d.new_commands()
    assert (command["amount"], command["psp_reference"]) == ("4.76", "psp-TR1")
    [note] = credit_notes(d)
    assert note["bill_to"] == "terminal:TR1"
    d.answer(command, "refunded")
    assert d.balance("driver_receivable:terminal:TR1") == 0
    assert_balanced(d)


def test_a_partner_session_refunds_the_driver_first_then_credits_the_partner() -> None:
    at = T0 - timedelta(days=30)
    d = network(
        PartnerConfigured(**envelope("t1", at), effective_at=at, partner_id="P1",
                          billing_period="monthly", pool_limit=Decimal("10.00")),
        EnrolmentChanged(**envelope("t1", at), effective_at=at, partner_id="P1",
                         driver_id="post", action="enrol"),
    )
    paid_post_paid(d, kwh="25")  # partner 10.00, driver 1.90
    d.apply(refund("tx1", "3.00"))
    [command] = d.new_commands()
    assert command["amount"] == "1.90"
    driver_note, partner_note = credit_notes(d)
    assert (driver_note["bill_to"], driver_note["total_incl_vat"]) == ("post", Decimal("1.90"))
    assert (partner_note["bill_to"], partner_note["total_incl_vat"]) == ("P1", Decimal("1.10"))
    assert partner_note["reference"].startswith("corporate:P1:")  # not invoiced yet
    assert d.balance("partner_receivable:P1") == Decimal("8.90")
    d.apply(tick(T0 + timedelta(days=40)))  # the period's settlement invoice
    d.apply(refund("tx1", "1.00"))
    [*_, settlement_invoice] = [doc for doc in issued_documents(d)
                                if doc["kind"] == "corporate_settlement"]
    assert credit_notes(d)[-1]["reference"] == settlement_invoice["number"]
    assert d.balance("partner_receivable:P1") == Decimal("7.90")
    assert_balanced(d)


# ---------------------------------------------------------------- the report
def test_the_report_lists_the_refund_and_its_credit_note_among_the_invoices() -> None:
    from projections.report import current_report, render_summary

    d = network()
    paid_post_paid(d)
    d.apply(refund("tx1", "1.00", event_id="refund-1"))
    d.apply(refund("tx1", event_id="refund-2"))
    report = current_report(d.ledger)
    assert [(r["refund_id"], r["amount"], r["credit_notes"], r["credit_cdr_id"])
            for r in report["refunds"]] == [("refund-1", "1.00", ["CN-000001"], None),
                                             ("refund-2", "3.76", ["CN-000002"], "tx1-C")]
    assert report["refunds"][0]["refunded_to"] == [
        {"payer": "driver", "id": "post", "amount_incl_vat": "1.00"}]
    notes = [i for i in report["invoices"] if i["kind"] == "credit_note"]
    assert [(n["number"], n["reference"], n["total_incl_vat"]) for n in notes] == [
        ("CN-000001", "R-000001", "1.00"), ("CN-000002", "R-000001", "3.76")]
    assert report["journal"]["sum_of_postings"] == "0.00"
    assert "Refunds: 2 (credit notes: 2)" in render_summary(report)


def test_a_wallet_refunded_in_steps_is_whole_again_and_the_last_step_credits_the_cdr() -> None:
    d = network()
    d.apply_each(session_events("tx1", "w", "10"))
    d.apply(refund("tx1", "0.01"), refund("tx1", "2.00"), refund("tx1"))
    wallet = d.get(Wallet, Wallet.create_id("t1", "w"))
    assert wallet.balance == Decimal("50.00") == -d.balance("wallet:w")
    assert refunds_of(d, "tx1").credit_cdr_issued
    assert [n["total_incl_vat"] for n in credit_notes(d)] == [
        Decimal("0.01"), Decimal("2.00"), Decimal("2.75")]
    assert d.balance("revenue") == 0 and d.balance("vat_payable:19") == 0
    d.apply(refund("tx1"))
    assert "nothing of this session remains refundable" in d.refusals()[-1].reason


def test_a_terminal_refunded_in_part_then_the_rest_goes_back_through_its_authorization() -> None:
    d = network()
    d.apply(terminal_authorized("TR1", "20.00"))
    d.apply_each(session_events("tx1", None, "10", terminal_reference="TR1"))
    [capture] = [c for c in d.new_commands() if c["action"] == "capture"]
    d.answer(capture, "captured", at=END)
    d.apply(refund("tx1", "0.76"))
    d.apply(refund("tx1"))
    refunds = d.new_commands()
    assert [(c["amount"], c["psp_reference"]) for c in refunds] == [
        ("0.76", "psp-TR1"), ("4.00", "psp-TR1")]
    for command in refunds:
        d.answer(command, "refunded")
    for name in ("driver_receivable:terminal:TR1", "psp_clearing", "revenue"):
        assert d.balance(name) == 0, name
    assert_balanced(d)
