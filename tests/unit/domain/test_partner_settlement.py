"""A partner period's settlement invoice: VAT per rate on the rate's basis (EN 16931
BR-CO-17) and the rounding entry that brings the partner's receivable to its total."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.journal import Posting, vat_account
from ledger.domain.partner_settlement import partner_invoice
from ledger.domain.settlement import ChargeLine, ChargeLines, VatRate, vat_on
from ledger.domain.settlement_plan import discounted

NINETEEN = Decimal(19)


def covered(tx: str, driver: str, nets: dict[VatRate, str],
            discount_percent: Decimal = Decimal(0)) -> dict[str, Any]:
    """A session's record on the pool, as `book_partner_share` writes it."""
    share = ChargeLines("EUR", tuple(
        ChargeLine(rate, Decimal(net), vat_on(Decimal(net), rate, "EUR"))
        for rate, net in nets.items()))
    billed = discounted(share, discount_percent)
    return {"transaction_id": tx, "driver_id": driver, "billed_gross": billed.gross,
            "share_lines": [line.to_dict("share") for line in share.lines],
            "billed_lines": [line.to_dict("billed") for line in billed.lines]}


def test_the_rate_is_applied_once_to_the_basis_and_the_cent_booked_at_settlement() -> None:
    # Sessions booked 12.12 x 19 % = 2.3028 -> 2.30 and 11.02 x 19 % = 2.0938 -> 2.09: 4.39.
    # The invoice's basis is 23.14, and 23.14 x 19 % = 4.3966 -> 4.40 (BR-CO-17).
    invoice = partner_invoice(
        [covered("tx1", "a", {NINETEEN: "12.12"}), covered("tx2", "b", {NINETEEN: "11.02"})],
        "EUR")
    # 4.40 spread 2.30 : 2.09: 440 x 230/439 = 230.52, 440 x 209/439 = 209.48; the cent left
    # after the floors goes to the larger remainder, a.
    assert [(line["driver_id"], line["net"], line["vat"]) for line in invoice.lines] == [
        ("a", "12.12", "2.31"), ("b", "11.02", "2.09")]
    assert (invoice.vat_booked, invoice.vat_invoiced) == (
        {NINETEEN: Decimal("4.39")}, {NINETEEN: Decimal("4.40")})
    assert invoice.total_incl_vat == Decimal("27.54")  # 23.14 + 4.40
    entry = invoice.vat_rounding_entry("settlement_vat_rounding:t1:P1:2026-03", "P1",
                                       "C-000001")
    assert entry is not None
    assert entry.postings == (Posting("partner_receivable:P1", Decimal("0.01")),
                              Posting("vat_payable:19", Decimal("-0.01")))


def test_no_rounding_no_entry() -> None:
    invoice = partner_invoice([covered("tx1", "a", {NINETEEN: "10.00"})], "EUR")
    assert invoice.vat_rounding() == {}
    assert invoice.vat_rounding_entry("e", "P1", "C-000001") is None


def test_the_discount_line_lowers_the_basis_the_vat_is_taken_on() -> None:
    # 10 % off 10.00 and 10.00: billed 9.00 + 1.71 twice (3.42); basis 20.00 - 2.00 = 18.00,
    # 18.00 x 19 % = 3.42: no rounding. The discount line carries no VAT.
    invoice = partner_invoice([covered("tx1", "a", {NINETEEN: "10.00"}, Decimal(10)),
                               covered("tx2", "a", {NINETEEN: "10.00"}, Decimal(10))], "EUR")
    assert [(line["description"], line["net"], line["vat"]) for line in invoice.lines] == [
        ("Charging by driver a", "20.00", "3.42"), ("Discount", "-2.00", "0")]
    assert invoice.vat_rounding_entry("e", "P1", "C-000001") is None


RATES: list[VatRate] = [None, Decimal(0), Decimal(7), NINETEEN, Decimal("20.5")]
sessions = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.dictionaries(st.sampled_from(RATES), st.integers(1, 10**6), min_size=1,
                        max_size=3),
    ),
    min_size=1, max_size=12,
)


@given(sessions=sessions, discount_percent=st.sampled_from([0, 5, 10, 12.5, 33]))
def test_vat_per_rate_is_the_rate_on_its_basis_and_the_entry_settles_the_difference(
    sessions: list[tuple[str, dict[VatRate, int]]], discount_percent: float
) -> None:
    discount = Decimal(str(discount_percent))
    records = [
        covered(f"tx{i}", driver, {r: str(Decimal(c) / 100) for r, c in nets.items()}, discount)
        for i, (driver, nets) in enumerate(sessions)
    ]
    invoice = partner_invoice(records, "EUR")
    basis: dict[VatRate, Decimal] = defaultdict(Decimal)
    vat: dict[VatRate, Decimal] = defaultdict(Decimal)
    for line in invoice.lines:
        rate = None if line["vat_rate"] is None else Decimal(line["vat_rate"])
        basis[rate] += Decimal(line["net"])
        vat[rate] += Decimal(line["vat"])
    assert dict(vat) == {rate: vat_on(b, rate, "EUR") for rate, b in basis.items()}
    # The partner was billed each session's gross; the entry moves the receivable to the
    # invoice's total and VAT payable to the invoice's VAT, rate by rate.
    billed = sum((r["billed_gross"] for r in records), Decimal(0))
    entry = invoice.vat_rounding_entry("e", "P1", "C-000001")  # a JournalEntry balances or raises
    moved: dict[str, Decimal] = defaultdict(Decimal)
    for posting in () if entry is None else entry.postings:
        moved[posting.account] += posting.amount
    assert billed + moved["partner_receivable:P1"] == invoice.total_incl_vat
    for rate, invoiced in invoice.vat_invoiced.items():
        assert invoice.vat_booked.get(rate, Decimal(0)) - moved[vat_account(rate)] == invoiced
    assert (entry is None) == (invoice.vat_booked == invoice.vat_invoiced)
