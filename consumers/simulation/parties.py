"""The simulated operators and partners as an invoice names them (TenantConfigured and
PartnerConfigured v3): legal names, VAT ids and addresses, synthetic and deterministic.

VAT ids have each country's VIES shape but are made up; postcodes are real ones of the city
the operator is named after. Partners sit in their operator's country.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # network.py names its operators' sellers with this module
    from consumers.simulation.network import Country

# Per ISO 3166-1 alpha-2 country: (legal form, a VAT id of the VIES shape, a postcode).
COUNTRY_PARTY_DATA: dict[str, tuple[str, str, str]] = {
    "DE": ("GmbH", "DE{digits9}", "10115"),
    "NL": ("B.V.", "NL{digits9}B01", "1012 AB"),
    "BE": ("BV", "BE0{digits9}", "1000"),
    "AT": ("GmbH", "ATU{digits8}", "1010"),
    "ES": ("S.L.", "ESB{digits8}", "28001"),
    "PT": ("Lda.", "PT{digits9}", "1100-148"),
    "IE": ("Ltd", "IE{digits7}T", "D02 X285"),
    "FI": ("Oy", "FI{digits8}", "00100"),
}


def _vat_id(pattern: str, seed: str) -> str:
    """A made-up VAT id of the country's shape, the same for the same seed."""
    number = str(sum((i + 1) * ord(c) for i, c in enumerate(seed)) * 7919).rjust(9, "1")
    return pattern.format(digits9=number[-9:], digits8=number[-8:], digits7=number[-7:])


def seller_fields(tenant_id: str, country: Country) -> dict[str, str]:
    """The operator as the seller of its invoices (EN 16931 BG-4)."""
    legal_form, vat_pattern, postcode = COUNTRY_PARTY_DATA[country.code]
    city = country.city.title()
    return {
        "legal_name": f"Charge {city} {legal_form}",
        "vat_id": _vat_id(vat_pattern, tenant_id),
        "address_street": "Energy Park 1",
        "address_postcode": postcode,
        "address_city": city,
        "address_country": country.code,
        "invoice_email": f"invoices@{tenant_id}.example",
    }


def buyer_fields(partner_id: str, country: Country) -> dict[str, str]:
    """A partner as the buyer of its settlement and voucher invoices (EN 16931 BG-7)."""
    legal_form, vat_pattern, postcode = COUNTRY_PARTY_DATA[country.code]
    name = partner_id.removeprefix("ptn-").replace("-", " ").title()
    return {
        "legal_name": f"{name} {legal_form}",
        "vat_id": _vat_id(vat_pattern, partner_id),
        "address_street": "Fleet Avenue 7",
        "address_postcode": postcode,
        "address_city": country.city.title(),
        "address_country": country.code,
        "buyer_reference": f"PO-{partner_id}",
        "invoice_email": f"ap@{partner_id}.example",
    }
