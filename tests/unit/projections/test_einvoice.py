"""EN 16931 e-invoices from the invoice read model: valid against the schema, the read
model's figures exactly, a missing party field named; and the parties they show."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.configuration import EffectiveDated
from ledger.domain.settlement import spread, vat_on
from projections.einvoice import (
    GUIDELINE_ID,
    EInvoiceError,
    EInvoiceSource,
    MissingPartyData,
    NotAnEInvoice,
    einvoice_xml,
    offers_einvoice,
)
from projections.invoice_parties import PARTY_FIELDS, party_as_of
from projections.mapping import changes_for
from projections.sql import INVOICE_PARTY_CONFIGURED
from tests.einvoice_checks import assert_totals_add_up, read_einvoice
from tests.unit.projections.events import identities_of, stored

SELLER = {
    "legal_name": "Charge Berlin GmbH", "vat_id": "DE123456789",
    "address_street": "Energy Park 1", "address_postcode": "10115", "address_city": "Berlin",
    "address_country": "DE", "invoice_email": "invoices@cpo-de.example",
    "time_zone": "Europe/Berlin",
}
BUYER = {
    "legal_name": "Fleet <&> GmbH", "vat_id": "DE987654321", "address_street": None,
    "address_postcode": None, "address_city": None, "address_country": "DE",
    "buyer_reference": "PO-42", "invoice_email": None, "payment_terms": "invoice",
}


def _line(description: str, net: str, vat: str, rate: str | None, **extra: Any
          ) -> dict[str, Any]:
    return {"description": description, "net": net, "vat": vat, "vat_rate": rate, **extra}


def _document(lines: list[dict[str, Any]], kind: str = "corporate_settlement",
              number: str = "C-000007") -> dict[str, Any]:
    net = sum((Decimal(line["net"]) for line in lines), Decimal(0))
    vat = sum((Decimal(line["vat"]) for line in lines), Decimal(0))
    return {"number": number, "kind": kind, "reference": "corporate:ptn-1:2026-02-28T23:00:00Z",
            "bill_to": "ptn-1", "currency": "EUR", "total_excl_vat": str(net),
            "total_vat": str(vat), "total_incl_vat": str(net + vat),
            "issued_at": "2026-04-01T22:00:00Z", "lines": lines}


def _source(document: dict[str, Any], seller: dict[str, Any] | None = SELLER,
            buyer: dict[str, Any] | None = BUYER) -> EInvoiceSource:
    period = (date(2026, 3, 1), date(2026, 3, 31)) if document["kind"] == (
        "corporate_settlement") else None
    return EInvoiceSource(document=document, seller_id="cpo-de", seller=seller,
                          buyer_id=str(document["bill_to"]), buyer=buyer,
                          issue_date=date(2026, 4, 2), period=period, payment_terms="invoice")


# VAT per rate on the rate's basis (BR-CO-17): 19 %: 7.45 + 18.25 - 2.56 = 23.14, x 19 % =
# 4.3966 -> 4.40 (the sessions booked 1.27 + 3.12 = 4.39; the cent goes to d2's larger
# remainder); 7 %: 4.00 - 0.40 = 3.60, x 7 % = 0.252 -> 0.25.
SETTLEMENT_LINES = [
    _line("Charging by driver d1", "7.45", "1.27", "19", driver_id="d1", sessions=["s1"]),
    _line("Charging by driver d2", "18.25", "3.13", "19", driver_id="d2", sessions=["s2", "s3"]),
    _line("Charging by driver d2", "4.00", "0.25", "7", driver_id="d2", sessions=["s3"]),
    _line("Discount", "-2.56", "0", "19"),
    _line("Discount", "-0.40", "0", "7"),
]


# ---------------------------------------------------------------- what it shows
def test_a_settlement_shows_its_lines_discounts_as_allowances_and_vat_per_rate() -> None:
    document = _document(SETTLEMENT_LINES)

    figures = read_einvoice(einvoice_xml(_source(document)))

    assert figures.number == "C-000007" and figures.guideline == GUIDELINE_ID
    assert (figures.seller_id, figures.buyer_id) == ("cpo-de", "ptn-1")
    assert figures.line_nets == [Decimal("7.45"), Decimal("18.25"), Decimal("4.00")]
    assert figures.allowances == [Decimal("2.56"), Decimal("0.40")]
    assert figures.vat == [("S", Decimal(7), Decimal("3.60"), Decimal("0.25")),
                           ("S", Decimal(19), Decimal("23.14"), Decimal("4.40"))]
    # 26.74 net (7.45 + 18.25 + 4.00 - 2.56 - 0.40) + 4.65 VAT (4.40 + 0.25)
    assert figures.grand_total == Decimal(document["total_incl_vat"]) == Decimal("31.39")
    assert_totals_add_up(figures)


def test_a_voucher_batch_is_one_line_delivered_on_its_issue_date() -> None:
    document = _document([_line("Voucher batch B: 6 x balance voucher of 25.00 EUR",
                                "115.98", "22.04", "19")], kind="voucher_batch",
                         number="V-000001")

    xml = einvoice_xml(_source(document))

    figures = read_einvoice(xml)
    assert figures.line_nets == [Decimal("115.98")] and figures.allowances == []
    assert figures.grand_total == Decimal("138.02")
    assert_totals_add_up(figures)
    assert b"<udt:DateTimeString format=\"102\">20260402</udt:DateTimeString>" in xml


def test_party_text_is_escaped_not_markup() -> None:
    xml = einvoice_xml(_source(_document(SETTLEMENT_LINES)))

    assert b"Fleet &lt;&amp;&gt; GmbH" in xml
    assert b"<ram:BuyerReference>PO-42</ram:BuyerReference>" in xml


def test_no_vat_applicable_is_category_o_without_vat_ids() -> None:
    document = _document([_line("Voucher batch", "50.00", "0", None)], kind="voucher_batch")

    xml = einvoice_xml(_source(document, seller={**SELLER, "vat_id": None}))

    figures = read_einvoice(xml)
    assert figures.vat == [("O", None, Decimal("50.00"), Decimal("0.00"))]
    assert b"Not subject to VAT" in xml and b"SpecifiedTaxRegistration" not in xml


AMOUNTS = st.decimals(min_value=0, max_value=10_000, places=2)
RATES = st.sampled_from(["0", "7", "19", "25.5"])


@st.composite
def settlements(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Lines per driver and rate, a discount per rate below its lines' net, and each rate's
    VAT on its basis spread over its lines by random weights: the shape
    `settle_partner_period` gives."""
    drawn = draw(st.lists(st.tuples(AMOUNTS, AMOUNTS, RATES), min_size=1, max_size=8))
    lines: list[dict[str, Any]] = []
    for rate in sorted({rate for _, _, rate in drawn}):
        at_rate = [(net, weight) for net, weight, r in drawn if r == rate]
        net = sum((n for n, _ in at_rate), Decimal(0))
        discount = draw(st.decimals(min_value=0, max_value=net, places=2))
        vat = vat_on(net - discount, Decimal(rate), "EUR")
        parts = spread(vat, [weight for _, weight in at_rate], "EUR")
        lines.extend(_line(f"Charging by driver d{len(lines) + i}", str(n), str(part), rate)
                     for i, ((n, _), part) in enumerate(zip(at_rate, parts, strict=True)))
        if discount:
            lines.append(_line("Discount", str(-discount), "0", rate))
    return lines


@given(lines=settlements())
def test_any_settlement_validates_and_its_totals_are_the_read_models(
    lines: list[dict[str, Any]],
) -> None:
    document = _document(lines)

    figures = read_einvoice(einvoice_xml(_source(document)))

    assert_totals_add_up(figures)
    assert figures.tax_basis == Decimal(document["total_excl_vat"])
    assert figures.tax_total == Decimal(document["total_vat"])
    assert figures.grand_total == Decimal(document["total_incl_vat"])
    assert len(figures.vat) == len({line["vat_rate"] for line in lines})


def test_a_credit_note_of_a_partner_invoice_is_type_381_naming_that_invoice() -> None:
    document = _document([_line("Refund of charging session s2: goodwill", "5.00", "0.95",
                                "19")], kind="credit_note", number="CN-000003")
    source = replace(_source({**document, "reference": "C-000007"}),
                     corrects=("C-000007", date(2026, 4, 2)))

    xml = einvoice_xml(source)

    figures = read_einvoice(xml)
    assert figures.grand_total == Decimal("5.95")
    assert_totals_add_up(figures)
    assert b"<ram:TypeCode>381</ram:TypeCode>" in xml
    assert b"<ram:IssuerAssignedID>C-000007</ram:IssuerAssignedID>" in xml


def test_only_partner_invoices_and_their_credit_notes_offer_an_einvoice() -> None:
    assert offers_einvoice("corporate_settlement", "corporate:p:2026-03-01T00:00:00Z")
    assert offers_einvoice("voucher_batch", "voucher_batch:B")
    assert offers_einvoice("credit_note", "C-000001")
    assert not offers_einvoice("credit_note", "R-000001")
    assert not offers_einvoice("session_receipt", "session:s1")


# ---------------------------------------------------------------- refused, with why
@pytest.mark.parametrize(
    ("seller", "buyer", "named"),
    [({**SELLER, "legal_name": None}, BUYER, "legal_name (seller name, BT-27)"),
     ({**SELLER, "vat_id": None}, BUYER, "vat_id (seller VAT identifier, BT-31"),
     (SELLER, {**BUYER, "address_country": None}, "address_country (buyer country, BT-55)"),
     (SELLER, {**BUYER, "legal_name": ""}, "legal_name (buyer name, BT-44)")],
)
def test_a_missing_field_the_profile_requires_is_named(
    seller: dict[str, Any], buyer: dict[str, Any], named: str
) -> None:
    with pytest.raises(MissingPartyData, match=re.escape(named)):
        einvoice_xml(_source(_document(SETTLEMENT_LINES), seller=seller, buyer=buyer))


def test_a_party_never_configured_says_so() -> None:
    with pytest.raises(MissingPartyData, match="no buyer data: partner 'ptn-1'"):
        einvoice_xml(_source(_document(SETTLEMENT_LINES), buyer=None))


def test_a_credit_note_of_a_drivers_receipt_is_not_an_einvoice() -> None:
    document = {**_document([_line("Refund", "1.00", "0.19", "19")], kind="credit_note",
                            number="CN-000001"), "reference": "R-000004"}

    with pytest.raises(NotAnEInvoice, match="CN-000001 is a credit_note correcting R-000004"):
        einvoice_xml(_source(document))


def test_a_receipt_is_not_an_einvoice() -> None:
    document = _document([_line("Charging", "1.00", "0.19", "19")], kind="session_receipt",
                         number="R-000001")

    with pytest.raises(NotAnEInvoice, match="R-000001 is a session_receipt"):
        einvoice_xml(_source(document))


def test_a_document_whose_lines_do_not_give_its_totals_is_refused() -> None:
    document = {**_document(SETTLEMENT_LINES), "total_vat": "4.66", "total_incl_vat": "31.40"}

    with pytest.raises(EInvoiceError, match=r"lines give total_vat 4\.65, the document says 4\.66"):
        einvoice_xml(_source(document))


def test_no_vat_applicable_beside_a_vat_rate_is_refused() -> None:
    document = _document([_line("a", "1.00", "0.19", "19"), _line("b", "1.00", "0", None)])

    with pytest.raises(EInvoiceError, match="BR-O-11"):
        einvoice_xml(_source(document))


# ---------------------------------------------------------------- the parties
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _row(effective_at: datetime, event_id: str, name: str) -> tuple[Any, ...]:
    values = dict.fromkeys(PARTY_FIELDS) | {"legal_name": name}
    return (effective_at.isoformat(), event_id, *(values[f] for f in PARTY_FIELDS))


def test_an_invoice_shows_each_party_as_configured_when_it_was_issued() -> None:
    rows = [_row(T0 + timedelta(days=10), "e2", "Later"), _row(T0, "e1", "First"),
            _row(T0 + timedelta(days=10), "e3", "Later, same instant")]

    assert party_as_of(rows, T0 - timedelta(seconds=1)) is None
    assert (party_as_of(rows, T0 + timedelta(days=9)) or {})["legal_name"] == "First"
    assert (party_as_of(rows, T0 + timedelta(days=10)) or {})["legal_name"] == (
        "Later, same instant")


def test_tenant_and_partner_configuration_are_projected_as_invoice_parties() -> None:
    configs = []
    for kind, key in (("tenant", "cpo-de"), ("partner", "ptn-1"), ("driver", "d1")):
        config = EffectiveDated(kind=kind, tenant_id="cpo-de", key=key)
        config.change(T0, f"evt-{kind}", {"legal_name": f"{kind} name", "time_zone": "UTC"})
        configs.append(config)
    events = stored(*configs)
    identities = identities_of(events)

    rows = [change.values for event in events for change in changes_for(event, identities)
            if change.statement is INVOICE_PARTY_CONFIGURED]

    assert [(r["party_kind"], r["party_id"], r["legal_name"]) for r in rows] == [
        ("tenant", "cpo-de", "tenant name"), ("partner", "ptn-1", "partner name")]
    assert rows[0]["effective_at"] == "2026-03-01T00:00:00Z"
    assert rows[0]["vat_id"] is None  # a version from before v3 lacks the field
