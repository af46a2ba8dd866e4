"""EN 16931 e-invoices (UN/CEFACT CII XML) of partner invoices, built with drafthorse.

What an e-invoice shows is what the invoice read model says: its lines, VAT and totals are
the document's, never recomputed. Only the shape changes:
  1. every line with a positive or zero net is an invoice line (quantity 1, unit C62, its
     net as price and line total) with its VAT category and rate;
  2. a line with a negative net (a settlement's discount per rate) is a document-level
     allowance of that category and rate (EN 16931 forbids a negative item price, BR-27);
  3. the VAT breakdown has one entry per category and rate: basis = its lines less its
     allowances, tax = the sum of its lines' VAT as the document has it (a settlement's is
     the rate on that basis, EN 16931 BR-CO-17: docs/billing-decisions.md);
  4. the totals follow EN 16931's BR-CO rules from those figures (line total, allowances,
     tax basis, tax, grand total, due) and must equal the document's own totals, or the
     document is refused (a read model that does not add up is a bug upstream);
  5. the XML is serialized with drafthorse's schema validation on (the Factur-X EN16931 XSD
     it ships), so an e-invoice that does not validate is never handed out.
VAT categories: a rate > 0 is S (standard), 0 is Z (zero rated), no rate ("no VAT
applicable", OCPI) is O (not subject to VAT), which EN 16931 does not let share an invoice
with other categories (BR-O-11..14) and which carries no VAT ids (BR-O-02).

A credit note (CN-) that corrects a C- or V- invoice is an EN 16931 credit note (type 381)
naming that invoice; other credit notes correct receipts to drivers and get none.

The seller is the tenant (TenantConfigured v3), the buyer the partner billed
(PartnerConfigured v3), both as configured when the invoice was issued
(projections/invoice_parties.py). A field EN 16931 requires and the configuration lacks is a
`MissingPartyData` naming it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from drafthorse.models.accounting import (
    ApplicableTradeTax,
    CategoryTradeTax,
    TradeAllowanceCharge,
)
from drafthorse.models.document import Document
from drafthorse.models.note import IncludedNote
from drafthorse.models.party import TaxRegistration
from drafthorse.models.payment import PaymentTerms
from drafthorse.models.tradelines import LineItem
from lxml import etree

from ledger.domain.invoice import SERIES_PREFIXES
from ledger.domain.money import currency_exponent

# The EN 16931 core profile (CIUS-free), and the XSD drafthorse validates it against.
GUIDELINE_ID = "urn:cen.eu:en16931:2017"
SCHEMA = "FACTUR-X_EN16931"
# Documents that are invoices to a business (UNTDID 1001 380: commercial invoice), and
# credit notes (381) when they correct one of those.
EINVOICE_KINDS: dict[str, str] = {"corporate_settlement": "380", "voucher_batch": "380"}
CREDIT_NOTE_KIND = "credit_note"
CREDIT_NOTE_TYPE_CODE = "381"
VAT_SCHEME = "VAT"
VAT_ID_SCHEME = "VA"  # a tax registration that is a VAT id (BT-31, BT-48)
EMAIL_SCHEME = "EM"  # an electronic address that is an e-mail (BT-34, BT-49)
UNIT_ONE = "C62"  # UN/ECE Rec 20: one (a line is one supply of its net)
DISCOUNT_REASON_CODE = "95"  # UNTDID 5189: discount
NOT_SUBJECT_TO_VAT = "Not subject to VAT"
STANDARD, ZERO_RATED, NOT_SUBJECT = "S", "Z", "O"
# What EN 16931 requires of each party, as (configuration field, what it is on the invoice).
SELLER_REQUIRED: tuple[tuple[str, str], ...] = (
    ("legal_name", "seller name, BT-27"), ("address_country", "seller country, BT-40"),
)
SELLER_VAT_REQUIRED = ("vat_id", "seller VAT identifier, BT-31 (BR-S-02, BR-Z-02)")
BUYER_REQUIRED: tuple[tuple[str, str], ...] = (
    ("legal_name", "buyer name, BT-44"), ("address_country", "buyer country, BT-55"),
)
# A line's note names at most this many sessions: enough to find them, short to print.
LINE_SESSIONS_SHOWN_MAX = 50

Party = Mapping[str, str | None]


class EInvoiceError(Exception):
    """The document cannot be given as an EN 16931 e-invoice; the message says why."""


class NotAnEInvoice(EInvoiceError):
    """The document is not of a series issued to a business (C-, V-, and the credit notes
    that correct those)."""


class MissingPartyData(EInvoiceError):
    """The seller or buyer configuration lacks a field EN 16931 requires."""


@dataclass(frozen=True, slots=True)
class EInvoiceSource:
    """Everything an e-invoice shows: the document with its lines (as the invoice read model
    has it), the parties in force at its issue, and dates in the tenant's time zone."""

    document: Mapping[str, Any]
    seller_id: str
    seller: Party | None
    buyer_id: str
    buyer: Party | None
    issue_date: date
    period: tuple[date, date] | None = None  # first and last day billed (inclusive)
    payment_terms: str | None = None  # the partner's: invoice or card
    # A credit note's corrected C-/V- invoice: its number and issue date (EN 16931 BG-3).
    corrects: tuple[str, date] | None = None


@dataclass(frozen=True, slots=True)
class VatGroup:
    """One entry of the VAT breakdown (EN 16931 BG-23)."""

    category: str
    rate: Decimal | None
    lines_net: Decimal
    allowances: Decimal
    tax: Decimal

    @property
    def basis(self) -> Decimal:
        return self.lines_net - self.allowances


@dataclass(frozen=True, slots=True)
class Totals:
    """The document totals (EN 16931 BG-22), each from the figures below it (BR-CO-10..16)."""

    line_total: Decimal
    allowance_total: Decimal
    tax_basis: Decimal
    tax_total: Decimal
    grand_total: Decimal
    due_payable: Decimal


def offers_einvoice(kind: str, reference: str) -> bool:
    """Whether a document of `kind` with `reference` has an e-invoice (for links to it): a
    C- or V- invoice, or a credit note whose reference is the number of one."""
    if kind in EINVOICE_KINDS:
        return True
    prefixes = {SERIES_PREFIXES[k] for k in EINVOICE_KINDS}
    return kind == CREDIT_NOTE_KIND and reference.split("-", 1)[0] in prefixes


def vat_category(rate: Decimal | None) -> str:
    if rate is None:
        return NOT_SUBJECT
    return ZERO_RATED if rate == 0 else STANDARD


def _line_rate(line: Mapping[str, Any]) -> Decimal | None:
    rate = line.get("vat_rate")
    return None if rate is None else Decimal(str(rate))


def _amount(value: Any, currency: str, what: str) -> Decimal:
    """An amount of the document at its currency's exponent; one with more places would
    have to be rounded, which would change money: refused."""
    exact = Decimal(str(value))
    quantum = Decimal(1).scaleb(-currency_exponent(currency))
    rounded = exact.quantize(quantum)
    if rounded != exact:
        raise EInvoiceError(f"{what}: {value} {currency} is not a whole number of minor units")
    return rounded


def is_allowance(line: Mapping[str, Any]) -> bool:
    return Decimal(str(line["net"])) < 0


def vat_breakdown(lines: Sequence[Mapping[str, Any]], currency: str) -> list[VatGroup]:
    """Per VAT category and rate, in rate order (no rate first): steps 1-3."""
    nets: dict[Decimal | None, Decimal] = defaultdict(Decimal)
    allowances: dict[Decimal | None, Decimal] = defaultdict(Decimal)
    taxes: dict[Decimal | None, Decimal] = defaultdict(Decimal)
    for line in lines:
        rate = _line_rate(line)
        net = _amount(line["net"], currency, "line net")
        if net < 0:
            allowances[rate] -= net
        else:
            nets[rate] += net
        taxes[rate] += _amount(line["vat"], currency, "line VAT")
    rates = sorted(nets.keys() | allowances.keys(),
                   key=lambda r: Decimal(-1) if r is None else r)
    return [VatGroup(vat_category(rate), rate, nets[rate], allowances[rate], taxes[rate])
            for rate in rates]


def totals_of(groups: Sequence[VatGroup], document: Mapping[str, Any]) -> Totals:
    """Step 4: the totals from the breakdown, checked against the document's own."""
    currency = str(document["currency"])
    line_total = sum((g.lines_net for g in groups), Decimal(0))
    allowance_total = sum((g.allowances for g in groups), Decimal(0))
    tax_basis = line_total - allowance_total
    tax_total = sum((g.tax for g in groups), Decimal(0))
    totals = Totals(line_total, allowance_total, tax_basis, tax_total,
                    tax_basis + tax_total, tax_basis + tax_total)
    expected = {
        "total_excl_vat": totals.tax_basis, "total_vat": totals.tax_total,
        "total_incl_vat": totals.grand_total,
    }
    for name, figure in expected.items():
        stated = _amount(document[name], currency, name)
        if stated != figure:
            raise EInvoiceError(
                f"{document['number']}: its lines give {name} {figure}, the document says "
                f"{stated}: the invoice read model does not add up"
            )
    return totals


def _check_categories(groups: Sequence[VatGroup], number: str) -> None:
    categories = {g.category for g in groups}
    if NOT_SUBJECT in categories and len(categories) > 1:
        raise EInvoiceError(
            f"{number} has lines with no VAT applicable beside lines with a VAT rate; "
            "EN 16931 keeps 'not subject to VAT' (O) on invoices of its own (BR-O-11)"
        )


def _require(party: Party | None, party_id: str, role: str, kind: str,
             fields: Sequence[tuple[str, str]]) -> Party:
    if party is None:
        raise MissingPartyData(
            f"no {role} data: {kind} {party_id!r} has no configuration in force at the "
            "invoice's issue (a store projected before e-invoices existed needs "
            "`ledger project --rebuild`)"
        )
    missing = [f"{name} ({meaning})" for name, meaning in fields if not party.get(name)]
    if missing:
        raise MissingPartyData(
            f"{kind} {party_id!r} lacks what EN 16931 requires of the {role}: "
            + ", ".join(missing)
        )
    return party


def einvoice_xml(source: EInvoiceSource) -> bytes:
    """The document as EN 16931 CII XML, validated against the schema (steps 1-5)."""
    document = source.document
    number = str(document["number"])
    type_code = _type_code(source)
    currency = str(document["currency"])
    lines: list[Mapping[str, Any]] = list(document["lines"])
    groups = vat_breakdown(lines, currency)
    _check_categories(groups, number)
    totals = totals_of(groups, document)
    with_vat_ids = any(g.category != NOT_SUBJECT for g in groups)
    seller_fields = SELLER_REQUIRED + ((SELLER_VAT_REQUIRED,) if with_vat_ids else ())
    seller = _require(source.seller, source.seller_id, "seller", "tenant", seller_fields)
    buyer = _require(source.buyer, source.buyer_id, "buyer", "partner", BUYER_REQUIRED)

    doc = Document()
    doc.context.guideline_parameter.id = GUIDELINE_ID
    doc.header.id = number
    doc.header.type_code = type_code
    doc.header.issue_date_time = source.issue_date
    if source.corrects is not None:
        # A credit note's lines are what it credits, positive as on the document (the type
        # code 381 says it is a credit); it names the invoice it corrects (BT-25, BT-26).
        corrected_number, corrected_on = source.corrects
        doc.trade.settlement.invoice_referenced_document.issuer_assigned_id = corrected_number
        doc.trade.settlement.invoice_referenced_document.issue_date_time = corrected_on
    _note(doc.header.notes, f"Reference: {document['reference']}")

    for index, line in enumerate(line for line in lines if not is_allowance(line)):
        doc.trade.items.add(_item(index + 1, line, currency))

    agreement = doc.trade.agreement
    if buyer.get("buyer_reference"):
        agreement.buyer_reference = buyer["buyer_reference"]
    _party(agreement.seller, source.seller_id, seller, with_vat_ids)
    _party(agreement.buyer, source.buyer_id, buyer, with_vat_ids)
    if source.period is None:
        # Delivered when invoiced (a voucher batch): the actual delivery date (BT-72).
        doc.trade.delivery.event.occurrence = source.issue_date

    _settle(doc.trade.settlement, source, lines, groups, totals)
    return _validated(doc, number)


def _settle(settlement: Any, source: EInvoiceSource, lines: Sequence[Mapping[str, Any]],
            groups: Sequence[VatGroup], totals: Totals) -> None:
    """The settlement part: VAT breakdown, period, allowances, terms, totals."""
    currency = str(source.document["currency"])
    settlement.currency_code = currency
    for group in groups:
        settlement.trade_tax.add(_vat_entry(group))
    if source.period is not None:
        settlement.period.start, settlement.period.end = source.period
    for line in lines:
        if is_allowance(line):
            settlement.allowance_charge.add(_allowance(line, currency))
    terms = PaymentTerms()
    terms.description = (
        "Charged to the card on file" if source.payment_terms == "card"
        else "Payable on receipt"
    )
    settlement.terms.add(terms)
    summation = settlement.monetary_summation
    summation.line_total = totals.line_total
    summation.charge_total = Decimal(0).quantize(totals.line_total)
    summation.allowance_total = totals.allowance_total
    summation.tax_basis_total = totals.tax_basis
    summation.tax_total = (totals.tax_total, currency)
    summation.grand_total = totals.grand_total
    summation.prepaid_total = Decimal(0).quantize(totals.line_total)
    summation.due_amount = totals.due_payable


def _type_code(source: EInvoiceSource) -> str:
    document = source.document
    kind = str(document["kind"])
    if kind == CREDIT_NOTE_KIND and source.corrects is not None:
        return CREDIT_NOTE_TYPE_CODE
    type_code = EINVOICE_KINDS.get(kind)
    if type_code is None:
        corrects = (f" correcting {document['reference']}" if kind == CREDIT_NOTE_KIND
                    else "")
        raise NotAnEInvoice(
            f"{document['number']} is a {kind}{corrects}: e-invoices are given for partner "
            "settlement (C-) and voucher batch (V-) invoices and the credit notes of those"
        )
    return type_code


def _validated(doc: Any, number: str) -> bytes:
    """Step 5: drafthorse validates while it serializes; its failure becomes ours."""
    try:
        xml: bytes = doc.serialize(schema=SCHEMA)
    except etree.XMLSyntaxError as exc:
        raise EInvoiceError(f"{number}: the e-invoice fails the {SCHEMA} schema: {exc}") from exc
    return xml


def _note(notes: Any, text: str) -> None:
    note = IncludedNote()
    note.content = text
    notes.add(note)


def _item(line_id: int, line: Mapping[str, Any], currency: str) -> Any:
    net = _amount(line["net"], currency, "line net")
    rate = _line_rate(line)
    item = LineItem()
    item.document.line_id = str(line_id)
    sessions = list(line.get("sessions") or [])
    if sessions:
        shown = sessions[:LINE_SESSIONS_SHOWN_MAX]
        more = len(sessions) - len(shown)
        _note(item.document.notes, "Sessions: " + ", ".join(shown)
              + (f" and {more} more" if more else ""))
    item.product.name = str(line["description"]) or "Charging"
    item.agreement.net.amount = net
    item.delivery.billed_quantity = (Decimal(1), UNIT_ONE)
    item.settlement.trade_tax.type_code = VAT_SCHEME
    item.settlement.trade_tax.category_code = vat_category(rate)
    if rate is not None:
        item.settlement.trade_tax.rate_applicable_percent = rate
    item.settlement.monetary_summation.total_amount = net
    return item


def _allowance(line: Mapping[str, Any], currency: str) -> Any:
    rate = _line_rate(line)
    allowance = TradeAllowanceCharge()
    allowance.indicator = False
    allowance.actual_amount = -_amount(line["net"], currency, "allowance")
    allowance.reason_code = DISCOUNT_REASON_CODE
    allowance.reason = str(line["description"]) or "Discount"
    tax = CategoryTradeTax()
    tax.type_code = VAT_SCHEME
    tax.category_code = vat_category(rate)
    if rate is not None:
        tax.rate_applicable_percent = rate
    allowance.trade_tax.add(tax)
    return allowance


def _vat_entry(group: VatGroup) -> Any:
    entry = ApplicableTradeTax()
    entry.calculated_amount = group.tax
    entry.type_code = VAT_SCHEME
    if group.category == NOT_SUBJECT:
        entry.exemption_reason = NOT_SUBJECT_TO_VAT
    entry.basis_amount = group.basis
    entry.category_code = group.category
    if group.rate is not None:
        entry.rate_applicable_percent = group.rate
    return entry


def _party(target: Any, party_id: str, party: Party, with_vat_id: bool) -> None:
    target.id = party_id
    target.name = party["legal_name"]
    address = target.address
    if party.get("address_postcode"):
        address.postcode = party["address_postcode"]
    if party.get("address_street"):
        address.line_one = party["address_street"]
    if party.get("address_city"):
        address.city_name = party["address_city"]
    address.country_id = party["address_country"]
    if party.get("invoice_email"):
        target.electronic_address.uri_ID = (EMAIL_SCHEME, party["invoice_email"])
    if with_vat_id and party.get("vat_id"):
        registration = TaxRegistration()
        registration.id = (VAT_ID_SCHEME, party["vat_id"])
        target.tax_registrations.add(registration)
