"""Reading an e-invoice back in tests: validated against the schema drafthorse ships, and
its figures (EN 16931 business terms) as decimals, to check them against the read model."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from drafthorse.utils import validate_xml
from lxml import etree

SCHEMA = "FACTUR-X_EN16931"
NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:"
           "ReusableAggregateBusinessInformationEntity:100",
}
SETTLEMENT = "//ram:ApplicableHeaderTradeSettlement"
SUMMATION = f"{SETTLEMENT}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
CENT = Decimal("0.01")  # the e-invoices are in EUR


@dataclass(frozen=True)
class EInvoiceFigures:
    number: str
    guideline: str
    seller_id: str
    buyer_id: str
    line_nets: list[Decimal]
    allowances: list[Decimal]
    vat: list[tuple[str, Decimal | None, Decimal, Decimal]]  # category, rate, basis, tax
    line_total: Decimal
    allowance_total: Decimal
    tax_basis: Decimal
    tax_total: Decimal
    grand_total: Decimal
    due_payable: Decimal


def _one(root: etree._Element, path: str) -> str:
    found = root.xpath(path, namespaces=NS)
    assert len(found) == 1, (path, found)
    return str(found[0].text)


def _all(root: etree._Element, path: str) -> list[Decimal]:
    return [Decimal(node.text) for node in root.xpath(path, namespaces=NS)]


def read_einvoice(xml: bytes) -> EInvoiceFigures:
    """The figures of `xml`, after validating it against the EN16931 schema (raises if not)."""
    validate_xml(xml, SCHEMA)
    root = etree.fromstring(xml)
    vat = []
    for entry in root.xpath(f"{SETTLEMENT}/ram:ApplicableTradeTax", namespaces=NS):
        rate = entry.xpath("ram:RateApplicablePercent", namespaces=NS)
        vat.append((_one(entry, "ram:CategoryCode"),
                    Decimal(rate[0].text) if rate else None,
                    Decimal(_one(entry, "ram:BasisAmount")),
                    Decimal(_one(entry, "ram:CalculatedAmount"))))
    return EInvoiceFigures(
        number=_one(root, "//rsm:ExchangedDocument/ram:ID"),
        guideline=_one(root, "//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID"),
        seller_id=_one(root, "//ram:SellerTradeParty/ram:ID"),
        buyer_id=_one(root, "//ram:BuyerTradeParty/ram:ID"),
        line_nets=_all(root, "//ram:SpecifiedTradeSettlementLineMonetarySummation"
                             "/ram:LineTotalAmount"),
        allowances=_all(root, f"{SETTLEMENT}/ram:SpecifiedTradeAllowanceCharge"
                              "/ram:ActualAmount"),
        vat=vat,
        line_total=Decimal(_one(root, f"{SUMMATION}/ram:LineTotalAmount")),
        allowance_total=Decimal(_one(root, f"{SUMMATION}/ram:AllowanceTotalAmount")),
        tax_basis=Decimal(_one(root, f"{SUMMATION}/ram:TaxBasisTotalAmount")),
        tax_total=Decimal(_one(root, f"{SUMMATION}/ram:TaxTotalAmount")),
        grand_total=Decimal(_one(root, f"{SUMMATION}/ram:GrandTotalAmount")),
        due_payable=Decimal(_one(root, f"{SUMMATION}/ram:DuePayableAmount")),
    )


def assert_totals_add_up(figures: EInvoiceFigures) -> None:
    """EN 16931's BR-CO rules on the document totals and the VAT per rate, to the cent."""
    assert figures.line_total == sum(figures.line_nets)  # BR-CO-10
    assert figures.allowance_total == sum(figures.allowances)  # BR-CO-11
    assert figures.tax_basis == figures.line_total - figures.allowance_total  # BR-CO-13
    assert figures.tax_total == sum(tax for *_, tax in figures.vat)  # BR-CO-14
    assert figures.tax_basis == sum(basis for _, _, basis, _ in figures.vat)
    assert figures.grand_total == figures.tax_basis + figures.tax_total  # BR-CO-15
    assert figures.due_payable == figures.grand_total  # BR-CO-16, nothing prepaid
    for category, rate, basis, tax in figures.vat:  # BR-CO-17: the rate applied once
        expected = Decimal(0) if rate is None else (basis * rate / 100).quantize(
            CENT, rounding=ROUND_HALF_UP)
        assert tax == expected, f"BR-CO-17: {category} {rate} % of {basis} is {expected}, not {tax}"
