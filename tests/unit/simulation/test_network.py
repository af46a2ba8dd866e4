"""The simulated operators: valid OCPI tariffs, locations, and a driver for every model."""

from __future__ import annotations

import json
import random
from decimal import Decimal

from consumers.simulation.network import EventIds, build_tenant, configuration_events, ocpi_json
from ledger.domain.tariff import parse_tariff
from ledger.messages import DriverConfigured, LocationConfigured, TariffPublished, TenantConfigured


def test_ocpi_json_writes_decimals_as_exact_numbers() -> None:
    text = ocpi_json({"price": Decimal("0.35"), "vat": Decimal("19"), "ok": True, "n": None})
    assert text == '{"price":0.35,"vat":19,"ok":true,"n":null}'


def test_every_tariff_is_valid_ocpi_in_the_tenants_currency_and_vat() -> None:
    for index, vat in ((0, Decimal("19")), (1, Decimal("21"))):
        tenant = build_tenant(index, 100, random.Random(index))
        for spec in tenant.tariffs:
            tariff = parse_tariff(json.loads(spec.ocpi_json()))
            assert tariff.currency == "EUR"
            assert tariff.id == spec.tariff_id
            rates = {c.vat_percent for e in tariff.elements for c in e.price_components}
            assert rates == {vat}


def test_the_network_has_open_access_terminals_and_every_driver_model() -> None:
    tenant = build_tenant(0, 200, random.Random(1))
    assert sum(loc.open_access for loc in tenant.locations) == 1
    assert any(loc.has_terminal and loc.power == "AC" for loc in tenant.locations)
    assert any(loc.has_terminal and loc.power == "DC" for loc in tenant.locations)
    profiles = {d.profile for d in tenant.drivers}
    assert profiles == {
        "wallet_bank", "wallet_card", "wallet_auto", "wallet_low", "pre_authorization",
        "pre_authorization_declined", "post_paid", "post_paid_declined", "post_paid_flaky",
    }
    tokens = [d.id_token for d in tenant.drivers]
    assert len(set(tokens)) == len(tokens)


def test_configuration_starts_with_the_tenant_and_covers_the_network() -> None:
    tenant = build_tenant(0, 50, random.Random(2))
    from datetime import UTC, datetime

    at = datetime(2026, 3, 3, tzinfo=UTC)
    events = configuration_events(tenant, at, EventIds(tenant.tenant_id))
    assert isinstance(events[0], TenantConfigured)
    assert events[0].currency == "EUR"
    assert events[0].retry_schedule_hours == [1, 6, 24, 72, 168]
    assert sum(isinstance(e, TariffPublished) for e in events) == len(tenant.tariffs)
    assert sum(isinstance(e, LocationConfigured) for e in events) == len(tenant.locations)
    drivers = [e for e in events if isinstance(e, DriverConfigured)]
    assert {d.billing_model for d in drivers} == {"wallet", "pre_authorization", "post_paid"}
    auto = [d for d in drivers if d.auto_top_up_amount is not None]
    assert auto and all(d.auto_top_up_threshold is not None for d in auto)
    assert len({e.event_id for e in events}) == len(events)


def test_every_simulated_location_is_in_its_operators_country_as_ocpi_spells_it() -> None:
    from datetime import UTC, datetime

    countries = {}
    for index in (0, 3):  # Germany, Austria
        tenant = build_tenant(index, 20, random.Random(2))
        events = configuration_events(tenant, datetime(2026, 3, 3, tzinfo=UTC),
                                      EventIds(tenant.tenant_id))
        countries[tenant.country.code] = {
            e.country_code for e in events if isinstance(e, LocationConfigured)
        }
    assert countries == {"DE": {"DEU"}, "AT": {"AUT"}}


def test_every_simulated_operator_and_partner_has_what_an_einvoice_requires() -> None:
    # The wire models validate the shapes (alpha-2 country, VAT id, e-mail) on construction.
    from datetime import UTC, datetime

    from consumers.simulation.network import COUNTRIES
    from consumers.simulation.parties import buyer_fields
    from ledger.messages import PartnerConfigured

    at = datetime(2026, 3, 3, tzinfo=UTC)
    for index in range(len(COUNTRIES)):
        tenant = build_tenant(index, 12, random.Random(2))
        seller = configuration_events(tenant, at, EventIds(tenant.tenant_id))[0]
        assert isinstance(seller, TenantConfigured)
        assert seller.legal_name and seller.vat_id and seller.invoice_email
        assert seller.address_country == tenant.country.code
        assert seller.vat_id.startswith(tenant.country.code)
        buyer = PartnerConfigured(
            event_id="e", tenant_id=tenant.tenant_id, occurred_at=at, producer="p",
            effective_at=at, partner_id="ptn-x-fleet", billing_period="monthly",
            pool_limit=Decimal(1), **buyer_fields("ptn-x-fleet", tenant.country))
        assert buyer.legal_name and buyer.buyer_reference and buyer.address_country
