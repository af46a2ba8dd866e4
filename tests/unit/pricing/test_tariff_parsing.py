"""parse_tariff: OCPI 2.2.1 tariffs in, typed model out, InvalidTariff naming the field."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from typing import Any

import pytest

from ledger.domain.errors import InvalidTariff
from ledger.domain.tariff import (
    DayOfWeek,
    ReservationRestriction,
    TariffDimension,
    parse_tariff,
    tariff_to_dict,
)
from tests.unit.pricing.builders import component, element


def _tariff(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "country_code": "DE",
        "party_id": "ALL",
        "id": "T1",
        "currency": "EUR",
        "elements": [element(component("ENERGY", "0.25", vat="10"))],
        "last_updated": "2024-01-01T00:00:00Z",
    }
    base.update(overrides)
    return base


def test_json_floats_are_read_through_their_decimal_text() -> None:
    t = parse_tariff(_tariff(elements=[element(component("TIME", 0.1, vat=5.2))]))
    c = t.elements[0].price_components[0]
    assert c.price == Decimal("0.1")
    assert c.vat_percent == Decimal("5.2")


def test_omitted_vat_means_no_vat_which_differs_from_zero_percent() -> None:
    t = parse_tariff(
        _tariff(elements=[element(component("ENERGY", "1"), component("FLAT", "1", vat="0"))])
    )
    no_vat, zero_vat = t.elements[0].price_components
    assert no_vat.vat_percent is None
    assert zero_vat.vat_percent == Decimal(0)
    assert no_vat.vat_factor == zero_vat.vat_factor == 1


def test_every_restriction_is_read_into_the_model() -> None:
    restrictions = {
        "start_time": "22:00",
        "end_time": "06:00",
        "start_date": "2024-01-01",
        "end_date": "2024-02-01",
        "min_kwh": 1,
        "max_kwh": 50.5,
        "min_current": 6,
        "max_current": 32,
        "min_power": 3.7,
        "max_power": 22,
        "min_duration": 600,
        "max_duration": 3600,
        "day_of_week": ["MONDAY", "SUNDAY"],
    }
    t = parse_tariff(_tariff(elements=[element(component("TIME", "1"), **restrictions)]))
    r = t.elements[0].restrictions
    assert r is not None
    assert (r.start_time, r.end_time) == (time(22, 0), time(6, 0))
    assert r.max_kwh == Decimal("50.5")
    assert r.min_power_kw == Decimal("3.7")
    assert (r.min_duration_s, r.max_duration_s) == (600, 3600)
    assert r.day_of_week == frozenset({DayOfWeek.MONDAY, DayOfWeek.SUNDAY})
    assert parse_tariff(tariff_to_dict(t)) == t


def test_reservation_elements_and_price_limits_are_read() -> None:
    t = parse_tariff(
        _tariff(
            min_price={"excl_vat": 0.5, "incl_vat": 0.55},
            max_price={"excl_vat": 10},
            start_date_time="2024-01-01T00:00:00Z",
            end_date_time="2024-06-30T23:59:59",
            elements=[
                element(component("FLAT", "2", vat="20"), reservation="RESERVATION_EXPIRES"),
                element(component("ENERGY", "0.25")),
            ],
        )
    )
    r = t.elements[0].restrictions
    assert r is not None and r.reservation is ReservationRestriction.RESERVATION_EXPIRES
    assert t.min_price is not None and t.min_price.incl_vat == Decimal("0.55")
    assert t.max_price is not None and t.max_price.incl_vat is None
    assert t.end_date_time is not None and t.end_date_time.tzinfo is not None
    assert [c.rule.reservation for c in t.index.by_dimension[TariffDimension.FLAT]] == [
        ReservationRestriction.RESERVATION_EXPIRES
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"elements": []}, "elements must hold at least one"),
        ({"elements": None}, "missing required field 'elements'"),
        ({"currency": "euro"}, "currency"),
        ({"currency": "XXX"}, "unknown currency"),
        ({"id": "x" * 37}, "longer than 36"),
        ({"elements": [element(component("POWER", "1"))]}, "'POWER' is not one of"),
        ({"elements": [element(component("TIME", "-1"))]}, "price must not be negative"),
        ({"elements": [element(component("TIME", "1", step_size=1.5))]}, "whole number"),
        ({"elements": [element(component("TIME", "1", step_size=-60))]}, "step_size"),
        ({"elements": [element(component("TIME", "1", vat="120"))]}, "vat must be"),
        ({"elements": [element(component("TIME", "abc"))]}, "expected a finite number"),
        ({"elements": [element(component("TIME", "1"), start_time="7:00")]}, "HH:MM"),
        ({"elements": [element(component("TIME", "1"), end_time="24:00")]}, "HH:MM"),
        ({"elements": [element(component("TIME", "1"), start_date="2024-02-30")]}, "no such"),
        ({"elements": [element(component("TIME", "1"), day_of_week=["MON"])]}, "'MON'"),
        ({"elements": [element(component("TIME", "1"), min_kwh=5, max_kwh=5)]}, "min_kwh"),
        ({"elements": [element(component("TIME", "1"), max_power=-1)]}, "max_power"),
        (
            {"elements": [element(component("ENERGY", "1"), reservation="RESERVATION")]},
            "only FLAT and TIME",
        ),
        ({"min_price": {"excl_vat": 5}, "max_price": {"excl_vat": 1}}, "min_price.excl_vat"),
        ({"max_price": {"excl_vat": 5, "incl_vat": 4}}, "incl_vat is below"),
        ({"end_date_time": "yesterday"}, "RFC 3339"),
        (
            {"start_date_time": "2024-02-01T00:00:00Z", "end_date_time": "2024-01-01T00:00:00Z"},
            "end_date_time must be after",
        ),
        ({"elements": [{"price_components": []}]}, "at least one component"),
        ({"elements": [element(component("TIME", True))]}, "a boolean"),
    ],
)
def test_invalid_tariff_is_refused_with_a_message_naming_the_field(
    change: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidTariff, match=message) as caught:
        parse_tariff(_tariff(**change))
    assert "\n" not in str(caught.value)


def test_a_tariff_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidTariff, match="expected a JSON object, got an array"):
        parse_tariff([])


def test_fields_pricing_does_not_need_may_be_missing() -> None:
    t = parse_tariff(
        {"id": "foo", "currency": "EUR", "elements": [element(component("FLAT", "0"))]}
    )
    assert (t.country_code, t.party_id, t.last_updated) == (None, None, None)


def test_step_size_zero_is_accepted_as_no_rounding() -> None:
    t = parse_tariff(_tariff(elements=[element(component("FLAT", "0", step_size=0))]))
    assert t.elements[0].price_components[0].step_size == 0
